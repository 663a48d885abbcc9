/**
 * The SQL a doc comment shows under "The generated SQL" is the SQL the function generates, as
 * Kysely's `testSql` pins its doc comments. This test reads the doc comments of src/sql/ and
 * src/db/policy-sql.ts themselves, runs each one's @example against the forum database (or
 * renders the input the table below names), captures the statement sent, and compares: a doc
 * comment cannot drift from the code. In the doc SQL, `…` and `<a placeholder>` stand for text
 * left out, `--` starts a comment, and line breaks and indentation are free. A statement's doc
 * SQL is the whole statement; a fragment's or a script's is an excerpt of what contains it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import type pg from 'pg'
import t from 'tap'
import ts from 'typescript'
import { policySql, renderRecordedPolicySql } from '../../src/db/policy-sql.ts'
import {
  adminOnly,
  and,
  inGroup,
  isSubject,
  or,
  viaParent,
  type Guard,
} from '../../src/sql/guard.ts'
import { op } from '../../src/sql/filter.ts'
import { guardedCount } from '../../src/sql/guarded-count.ts'
import { guardedDelete } from '../../src/sql/guarded-delete.ts'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import { sql } from '../../src/sql/sql-tag.ts'
import type { QueryConfig } from '../../src/sql/queryable.ts'
import { renderColumnGrantSql } from '../../src/sql/render-column-grants.ts'
import { renderPolicySql } from '../../src/sql/render-policy-sql.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, G2, threadLink } from '../helpers/sql-forum.ts'

const root = new URL('../../', import.meta.url)

interface DocBlock {
  /** `src/sql/guarded-select.ts: guardedSelect` */
  readonly where: string
  /** The ```sql blocks, in order. */
  readonly sql: readonly string[]
  /** The @example sections, in order. */
  readonly examples: readonly string[]
}

/** The doc comments that show "The generated SQL", by the name of what they document. */
function docBlocks(path: string): Map<string, DocBlock> {
  const text = readFileSync(new URL(path, root), 'utf8')
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true)
  const blocks = new Map<string, DocBlock>()
  for (const node of source.statements) {
    const name = ts.isFunctionDeclaration(node)
      ? node.name?.text
      : ts.isVariableStatement(node)
        ? node.declarationList.declarations[0]?.name.getText(source)
        : undefined
    for (const range of ts.getLeadingCommentRanges(text, node.getFullStart()) ?? []) {
      const comment = text.slice(range.pos, range.end)
      if (name === undefined || !comment.startsWith('/**')) continue
      const body = comment
        .slice(3, -2)
        .split('\n')
        .map((line) => line.replace(/^\s*\* ?/, ''))
        .join('\n')
      if (!body.includes('The generated SQL')) continue
      blocks.set(name, {
        where: `${path}: ${name}`,
        sql: [...body.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!),
        examples: body
          .split(/^@example/m)
          .slice(1)
          .map((e) => e.split(/^@/m)[0]!.trim()),
      })
    }
  }
  return blocks
}

const files = [
  ...readdirSync(new URL('src/sql/', root))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `src/sql/${f}`),
  'src/db/policy-sql.ts',
]
const docs = new Map(files.flatMap((file) => [...docBlocks(file)]))

/** One line, no comments, no space just inside brackets. */
const tidy = (sql: string) =>
  sql
    .replace(/--[^\n]*/g, ' ')
    .replace(/\s+/g, ' ')
    .replace(/([([]) /g, '$1')
    .replace(/ ([)\]])/g, '$1')
    .trim()

/** The doc SQL as a pattern: `…` and `<placeholder>` match anything, the rest itself. */
function docPattern(doc: string, whole: boolean): RegExp {
  const parts = tidy(doc)
    .split(/ ?(?:…|<[A-Za-z][^<>]*>) ?/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  const source = parts.join('[\\s\\S]*?')
  return new RegExp(whole ? `^${source}$` : source)
}

const capability = makeCapability({
  subject: 'user-1',
  groups: { member: [G1, G2], moderator: [G1, G2] },
})

type Render = (block: DocBlock) => Promise<readonly string[]>
interface Case {
  /** A statement is shown whole; a guard fragment or a policy script as an excerpt. */
  readonly whole: boolean
  readonly render: Render
}

t.test('every doc comment\'s "generated SQL" is what the code generates', async (t) => {
  const forum = await createForum(t)
  const threadId = await forum.thread(G1, 'a thread', 'user-1')
  const client = await forum.pool.connect()
  t.teardown(() => client.release())

  /** The statements `run` sends, in order; each run rolled back. */
  const captured = async (
    run: (pool: { query(c: QueryConfig): Promise<pg.QueryResult> }) => unknown,
  ) => {
    const texts: string[] = []
    const pool = {
      query: (config: QueryConfig) => {
        texts.push(config.text)
        return client.query(config)
      },
    }
    await client.query('BEGIN')
    try {
      await run(pool)
    } finally {
      await client.query('ROLLBACK')
    }
    return texts
  }
  const names = {
    guardedSelect,
    guardedCount,
    guardedInsert,
    guardedUpdate,
    guardedDelete,
    inGroup,
    viaParent,
    isSubject,
    and,
    or,
    adminOnly,
    capability,
    groupId: G1,
    otherGroupId: G2,
    threadId,
  }
  const AsyncFunction = (async () => {}).constructor as new (
    ...args: string[]
  ) => (...values: unknown[]) => Promise<unknown>
  /** Runs an @example (JavaScript) with `pool`, the names above and `scope` in scope. */
  const runExample = (example: string, scope: Record<string, unknown> = {}) => {
    const all = { ...names, ...scope }
    return captured((pool) =>
      new AsyncFunction('pool', ...Object.keys(all), example)(pool, ...Object.values(all)),
    )
  }
  /** The guard an @example's first line builds. */
  const guardOf = (example: string | undefined) =>
    new Function(...Object.keys(names), `return ${(example ?? '').split('\n')[0]}`)(
      ...Object.values(names),
    ) as Guard
  /** The first statement an @example sends. */
  const statementOf = async (example: string | undefined, scope?: Record<string, unknown>) => {
    const [first] = await runExample(example ?? 'throw new Error("no @example")', scope)
    return first ?? ''
  }
  /** The statement guardedSelect sends for `guard` on `table`. */
  const selectWith = (table: string, guard: Guard) =>
    statementOf('await guardedSelect(pool, capability, { from: table, guard })', { table, guard })
  const example = (name: string, index: number) => docs.get(name)?.examples[index]
  const policies = definePolicies({ posts: { read: viaParent(threadLink, 'member') } })

  const cases: Record<string, Case> = {
    guardedSelect: { whole: true, render: async (b) => [await statementOf(b.examples[0])] },
    guardedCount: { whole: true, render: async (b) => [await statementOf(b.examples[0])] },
    // Fragments of a statement on the forum's threads, for the wheres the doc's comments name.
    op: {
      whole: false,
      render: async () => {
        const since = new Date(0)
        const until = new Date()
        const select = (where: object) =>
          statementOf(
            'await guardedSelect(pool, capability, { from: "discussion_threads", where, guard: inGroup("group_id", "member") })',
            { where },
          )
        return [
          await select({
            created_at: op({ gte: since, lt: until }),
            title: op({ in: ['a', 'b'] }),
          }),
          await select({ mine: op.or({ created_by: 'user-1' }, { slug: null }) }),
        ]
      },
    },
    guardedUpdate: { whole: true, render: async (b) => [await statementOf(b.examples[0])] },
    // Column rules: a member of G1 and moderator of G2 filtering on a moderator's column.
    columnAccess: {
      whole: true,
      render: async () => {
        const member = inGroup('group_id', 'member')
        const policies = definePolicies({
          discussion_threads: {
            read: member,
            columns: { read: { member: ['id', 'title'], moderator: ['slug'] } },
          },
        })
        const who = makeCapability({ groups: { member: [G1], moderator: [G2] } })
        return captured((pool) =>
          bindPolicies(policies, pool as never, who).select('discussion_threads', { slug: 'x' }),
        )
      },
    },
    guardedDelete: { whole: true, render: async (b) => [await statementOf(b.examples[0])] },
    // Your own statement with the read guard's fragment, as request.db.guard gives it.
    sql: {
      whole: true,
      render: async () => {
        const threads = definePolicies({
          discussion_threads: { read: inGroup('group_id', 'member') },
        })
        return captured(async (pool) => {
          const db = bindPolicies(threads, pool, capability)
          const pattern = '%a%'
          await db.query(sql`SELECT t.* FROM discussion_threads t
  WHERE ${db.guard('discussion_threads', 'read', { alias: 't' })} AND t.title ILIKE ${pattern}`)
        })
      },
    },
    // Several rows: guardedInsert's second example; one row (compileSingleInsert): its first.
    guardedInsert: { whole: true, render: async (b) => [await statementOf(b.examples[1])] },
    compileSingleInsert: {
      whole: true,
      render: async () => [await statementOf(example('guardedInsert', 0))],
    },
    // A guard's fragment: in a statement on the table its column belongs to, and in a policy.
    inGroup: {
      whole: false,
      render: async (b) => {
        const guard = guardOf(b.examples[0])
        return [
          await selectWith('discussion_threads', guard),
          renderPolicySql(definePolicies({ discussion_threads: { read: guard } }), {
            groupIdType: 'uuid',
            role: 'app_runtime',
          }),
        ]
      },
    },
    isSubject: {
      whole: false,
      render: async (b) => {
        const guard = guardOf(b.examples[0])
        return [
          await selectWith('discussion_threads', guard),
          renderPolicySql(definePolicies({ discussion_threads: { read: guard } }), {
            groupIdType: 'uuid',
            role: 'app_runtime',
          }),
        ]
      },
    },
    viaParent: {
      whole: false,
      render: async (b) => [await selectWith('posts', guardOf(b.examples[0]))],
    },
    // The policy scripts, for the posts of the forum (read through their thread).
    renderPolicySql: {
      whole: false,
      render: async () => [renderPolicySql(policies, { groupIdType: 'uuid', role: 'app_runtime' })],
    },
    policySql: {
      whole: false,
      render: async () => [policySql(policies, { runtimeRole: 'app_runtime' })],
    },
    renderRecordedPolicySql: {
      whole: false,
      render: async () => [
        renderRecordedPolicySql(policies, { groupIdType: 'uuid', role: 'app_runtime' }),
      ],
    },
    renderColumnGrantSql: {
      whole: false,
      render: async () => [
        renderColumnGrantSql(
          definePolicies({
            users: {
              read: inGroup('group_id', 'member'),
              columns: { read: { member: ['id', 'name'] }, hidden: ['password_hash'] },
            },
          }),
          'app_runtime',
        ),
      ],
    },
  }

  t.same([...docs.keys()].sort(), Object.keys(cases).sort(), 'every doc SQL has its case here')
  for (const [name, { whole, render }] of Object.entries(cases)) {
    const block = docs.get(name)
    if (block === undefined) continue
    const rendered = await render(block)
    t.equal(block.sql.length, rendered.length, `${block.where}: one rendering per sql block`)
    block.sql.forEach((doc, i) => {
      const actual = rendered[i] ?? ''
      t.ok(docPattern(doc, whole).test(tidy(actual)), `${block.where} (sql block ${i + 1})`, {
        doc: tidy(doc),
        generated: tidy(actual),
      })
    })
  }
})

t.test('the doc pattern: elisions match anything, the rest only itself', async (t) => {
  t.ok(docPattern('SELECT … FROM "t"', true).test('SELECT "a", "b" FROM "t"'))
  t.ok(docPattern('WHERE (\n  "a" = $1 -- the key\n)', true).test('WHERE ("a" = $1)'))
  t.ok(docPattern('SELECT <the columns> FROM "t"', true).test('SELECT "a" FROM "t"'))
  t.notOk(docPattern('SELECT "a" FROM "t"', true).test('SELECT "a" FROM "t" LIMIT $1'))
  t.notOk(docPattern('"a" = $1', true).test('"a" = $12'))
  t.ok(docPattern('"a" = $1', false).test('WHERE "a" = $1 AND TRUE'))
  t.ok(docPattern('"x" <= $1', true).test('"x" <= $1'), '<= is not a placeholder')
})
