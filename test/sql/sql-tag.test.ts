/**
 * The `sql` tag and guard fragments as text: values only ever become parameters, numbered by
 * keyhole; a fragment is the guard a guarded statement carries; identifiers are checked.
 */
import t from 'tap'
import { adminOnly, and, inGroup, isSubject, or, viaParent } from '../../src/sql/guard.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { guardFragment, isSql, sql } from '../../src/sql/sql-tag.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { G1, G2, member, postMember } from '../helpers/sql-forum.ts'

const alice = makeCapability({ subject: 'alice', groups: { member: [G1], moderator: [G2] } })
const admin = makeCapability({ subject: 'root', admin: true })

t.test('values become parameters, numbered in order; fragments are renumbered', async (t) => {
  const inner = sql`b = ${2} OR c = ANY (${[3, 4]})`
  const statement = sql`SELECT * FROM x WHERE a = ${1} AND (${inner}) AND d = ${"'; DROP TABLE x; --"}`
  t.equal(statement.text, 'SELECT * FROM x WHERE a = $1 AND (b = $2 OR c = ANY ($3)) AND d = $4')
  t.same(statement.values, [1, 2, [3, 4], "'; DROP TABLE x; --"])
  t.equal(sql`SELECT 1`.text, 'SELECT 1')
  t.same(sql`SELECT 1`.values, [])
  t.equal(sql`${sql``}${sql`x`}`.text, 'x', 'empty fragments vanish')
  const twice = sql`${inner} AND ${inner}`
  t.equal(twice.text, 'b = $1 OR c = ANY ($2) AND b = $3 OR c = ANY ($4)')
  t.ok(isSql(statement))
  t.notOk(isSql({ text: 'SELECT 1', values: [] }), 'a look-alike is not one')
  t.ok(Object.isFrozen(statement) && Object.isFrozen(statement.values), 'immutable')
  t.throws(() => (statement.values as unknown[]).push(1), TypeError)
})

t.test('sql is a tag, never a function of text', async (t) => {
  for (const bad of ['SELECT 1', ['SELECT 1'], undefined, { raw: ['x'] }]) {
    t.throws(() => (sql as (...a: unknown[]) => unknown)(bad), { code: 'KH_INVALID_OPTIONS' })
  }
})

t.test('a guard fragment is the guard a guarded statement carries', async (t) => {
  const node = (guard: { node: unknown }) => guard.node as never
  const cases: [string, ReturnType<typeof guardFragment>, string, number][] = [
    [
      'inGroup, aliased',
      guardFragment(node(member), alice, 'discussion_threads', { alias: 't' }),
      '"t"."group_id" = ANY ($1::uuid[])',
      1,
    ],
    [
      'no alias: the relation name',
      guardFragment(node(member), alice, 'forum.discussion_threads'),
      '"discussion_threads"."group_id" = ANY ($1::uuid[])',
      1,
    ],
    [
      'isSubject',
      guardFragment(node(isSubject('created_by')), alice, 'discussion_threads', { alias: 'T' }),
      '"T"."created_by" = $1',
      1,
    ],
    [
      'viaParent',
      guardFragment(node(postMember), alice, 'posts', { alias: 'po' }),
      'EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE ("p1"."id" = "po"."thread_id" AND "p1"."group_id" = ANY ($1::uuid[])))',
      1,
    ],
    ['admin: folded', guardFragment(node(member), admin, 'discussion_threads'), 'TRUE', 0],
    [
      'a folded branch leaves no parameter behind',
      guardFragment(
        node(or(and(inGroup('group_id', 'moderator'), adminOnly()), isSubject('created_by'))),
        alice,
        'discussion_threads',
      ),
      '"discussion_threads"."created_by" = $1',
      1,
    ],
    ['adminOnly, not admin', guardFragment(node(adminOnly()), alice, 'x'), 'FALSE', 0],
  ]
  for (const [name, fragment, text, count] of cases) {
    t.equal(fragment.text, text, name)
    t.equal(fragment.values.length, count, `${name}: ${count} parameters`)
  }
  t.same(cases[2]![1].values, ['alice'])
  t.ok(Buffer.isBuffer(cases[0]![1].values[0]), 'the group array in binary, as statements send it')

  // The same text as guardedSelect's WHERE, parameters aside.
  let seen = ''
  const spy = { query: async (c: { text: string }) => ((seen = c.text), { rows: [] }) }
  await guardedSelect(spy, alice, { from: 'posts', guard: postMember, prepared: false })
  const where = guardFragment(node(postMember), alice, 'posts', { alias: 't' }).text
  t.equal(seen, `SELECT "t".* FROM "posts" AS "t" WHERE ${where}`)
})

t.test(
  'tables, aliases and roles are checked; nothing of them enters the text unchecked',
  async (t) => {
    const node = member.node
    for (const alias of [
      't"; DROP TABLE x; --',
      'a b',
      '',
      '1t',
      'x'.repeat(64),
      'p1',
      'p22',
      'a.b',
      42,
    ]) {
      t.throws(
        () => guardFragment(node, alice, 'discussion_threads', { alias: alias as string }),
        { code: 'KH_INVALID_IDENTIFIER' },
        String(alias),
      )
    }
    t.equal(
      guardFragment(node, alice, 'discussion_threads', { alias: 'P1' }).text.slice(0, 4),
      '"P1"',
    )
    for (const table of ['x; DROP', 'a.b.c', '', '"x"']) {
      t.throws(() => guardFragment(node, alice, table), { code: 'KH_INVALID_IDENTIFIER' }, table)
    }
    const unknownRole = viaParent(
      { table: 'discussion_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' },
      'owner',
    )
    t.throws(() => guardFragment(unknownRole.node, alice, 'posts'), { code: 'KH_INVALID_OPTIONS' })
    t.throws(
      () => guardFragment(unknownRole.node, admin, 'posts'),
      { code: 'KH_INVALID_OPTIONS' },
      'also when folded',
    )
  },
)
