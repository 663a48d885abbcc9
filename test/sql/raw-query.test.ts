/**
 * `handle.query` and `handle.guard` in 'guard' mode (no RLS: the forum fixture's tables have none):
 * only `sql` that embeds this handle's guard runs, and it sees exactly the rows the guarded
 * statements see, whatever the values, aliases and identifiers carry.
 */
import t from 'tap'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import { sql } from '../../src/sql/sql-tag.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, G2, G3, member, moderator, postMember } from '../helpers/sql-forum.ts'

const forum = await createForum(t)
const { pool } = forum
const policies = definePolicies({
  discussion_threads: { read: member, update: moderator, delete: moderator, insert: member },
  posts: { read: postMember },
})
const THREE = "three's 50% _off_"
const threads: Record<string, string> = {}
for (const [g, name] of [
  [G1, 'one'],
  [G2, 'two'],
  [G3, THREE],
] as const) {
  threads[name] = await forum.thread(g, name)
  await forum.post(threads[name]!, `post in ${name}`)
}
const alice = makeCapability({ subject: 'alice', groups: { member: [G1], moderator: [G3] } })
const bob = makeCapability({ subject: 'bob', groups: { member: [G2] } })
const db = bindPolicies(policies, pool, alice)
const count = async () =>
  (await forum.rows('SELECT count(*)::int AS n FROM discussion_threads'))[0]!.n

t.test("'guard' mode refuses SQL that does not embed this request's guard", async (t) => {
  const before = await count()
  const insert =
    "INSERT INTO discussion_threads (group_id, title, created_by) VALUES ('" + G2 + "', 'x', 'a')"
  const others = bindPolicies(policies, pool, bob)
  const refused: [string, () => Promise<unknown>][] = [
    ['text', () => db.query(insert)],
    [
      'text and values',
      () => db.query('SELECT * FROM discussion_threads WHERE id = $1', [threads.two]),
    ],
    ['a config', () => db.query({ text: insert })],
    ['a look-alike of sql', () => db.query({ text: insert, values: [] } as never)],
    ['sql without a guard', () => db.query(sql`SELECT * FROM discussion_threads`)],
    [
      "sql with another request's guard",
      () =>
        db.query(
          sql`SELECT * FROM discussion_threads t WHERE ${others.guard('discussion_threads', 'read', { alias: 't' })}`,
        ),
    ],
    [
      'sql with both guards',
      () =>
        db.query(
          sql`SELECT * FROM discussion_threads t WHERE ${db.guard('discussion_threads', 'read', { alias: 't' })} OR ${others.guard('discussion_threads', 'read', { alias: 't' })}`,
        ),
    ],
  ]
  for (const [name, run] of refused) {
    await t.rejects(run(), { code: 'KH_UNGUARDED_SQL', statusCode: 500 }, name)
  }
  t.equal(await count(), before, 'nothing was written')
})

t.test('SQL that embeds the guard sees what the guarded select sees', async (t) => {
  const guard = db.guard('discussion_threads', 'read', { alias: 't' })
  const { rows, rowCount, command } = await db.query<{ title: string }>(
    sql`SELECT t.title FROM discussion_threads t WHERE ${guard} ORDER BY t.title`,
  )
  t.same(rows, [{ title: 'one' }, { title: THREE }], 'alice is a member of G1, moderator of G3')
  t.same([rowCount, command], [2, 'SELECT'])
  t.same(
    (await db.select('discussion_threads', {}, { columns: ['title'] })).map((r) => r.title),
    ['one', THREE],
  )
  // A join: each table guarded by its own fragment.
  const joined = await db.query(
    sql`SELECT th.title, count(po.id)::int AS posts FROM discussion_threads th
        JOIN posts po ON po.thread_id = th.id
        WHERE ${db.guard('discussion_threads', 'read', { alias: 'th' })}
          AND ${db.guard('posts', 'read', { alias: 'po' })}
        GROUP BY th.title`,
  )
  t.same(joined.rows, [
    { title: 'one', posts: 1 },
    { title: THREE, posts: 1 },
  ])
  // A plain object spread from sql is no longer keyhole's statement: refused like any config.
  await t.rejects(
    db.query({
      name: 'raw_titles',
      ...sql`SELECT t.title FROM discussion_threads t WHERE ${guard}`,
    }),
    { code: 'KH_UNGUARDED_SQL' },
  )
})

t.test('values, aliases and identifiers cannot widen the guard', async (t) => {
  const titles = async (pattern: unknown) =>
    (
      await db.query<{ title: string }>(
        sql`SELECT t.title FROM discussion_threads t
            WHERE ${db.guard('discussion_threads', 'read', { alias: 't' })} AND t.title LIKE ${pattern}`,
      )
    ).rows.map((r) => r.title)
  for (const pattern of ["%' OR TRUE --", "') OR ('1' = '1", '%', '$1', '\u0001', `%${G2}%`]) {
    t.same(
      (await titles(pattern)).filter((title) => title === 'two'),
      [],
      `pattern ${JSON.stringify(pattern)}`,
    )
  }
  t.same(
    await titles('%'),
    ['one', THREE],
    'a value is a value: % matches what the guard lets through',
  )
  t.same(await titles("%' OR TRUE --"), [], 'and the quote is a quote')
  for (const alias of ['t OR TRUE', 't"."group_id" IS NOT NULL OR "t', 'p1', '']) {
    t.throws(() => db.guard('discussion_threads', 'read', { alias }), {
      code: 'KH_INVALID_IDENTIFIER',
    })
  }
  for (const table of [
    'discussion_threads OR TRUE',
    'discussion_threads t',
    'posts; --',
    '__proto__',
    'toString',
  ]) {
    t.throws(() => db.guard(table, 'read'), { code: /^KH_(NO_POLICY|INVALID_IDENTIFIER)$/ }, table)
  }
  t.throws(
    () => db.guard('posts', 'delete'),
    { code: 'KH_NO_POLICY' },
    'an operation without a policy',
  )
  for (const operation of ['insert', 'READ', 'select', undefined]) {
    t.throws(() => db.guard('discussion_threads', operation as 'read'), {
      code: operation === 'insert' ? 'KH_INVALID_OPTIONS' : 'KH_INVALID_OPTIONS',
    })
  }
})

t.test('writes through a guard fragment change only the rows the guard allows', async (t) => {
  const client = await pool.connect()
  t.teardown(() => client.release())
  const onClient = bindPolicies(policies, client, alice)
  await client.query('BEGIN')
  t.teardown(() => client.query('ROLLBACK'))
  const updated = await onClient.query(
    sql`UPDATE discussion_threads t SET title = title || ${'!'} WHERE ${onClient.guard('discussion_threads', 'update', { alias: 't' })} RETURNING title`,
  )
  t.same(updated.rows, [{ title: `${THREE}!` }], 'only the moderated group')
  const deleted = await onClient.query(
    sql`DELETE FROM discussion_threads WHERE ${onClient.guard('discussion_threads', 'delete')} RETURNING title`,
  )
  t.same(
    [deleted.command, deleted.rows],
    ['DELETE', [{ title: `${THREE}!` }]],
    'only the moderated group',
  )
})

t.test('bad arguments and database errors', async (t) => {
  const guarded = sql`SELECT 1 FROM discussion_threads t WHERE ${db.guard('discussion_threads', 'read', { alias: 't' })}`
  const bad: [string, () => Promise<unknown>][] = [
    ['values not an array', () => db.query('SELECT 1', 'x' as never)],
    ['values with sql', () => db.query(guarded, [1])],
    ['no text', () => db.query({ values: [] } as never)],
    ['null', () => db.query(null as never)],
    ['config values not an array', () => db.query({ text: 'SELECT 1', values: 1 } as never)],
    ['a name that is not a string', () => db.query({ text: 'SELECT 1', name: 1 } as never)],
  ]
  for (const [name, run] of bad) await t.rejects(run(), { code: 'KH_INVALID_OPTIONS' }, name)
  const rls = bindPolicies(policies, pool, alice, { mode: 'rls' })
  t.same((await rls.query({ text: 'SELECT $1::int AS n', values: [7], name: 'raw_n' })).rows, [
    { n: 7 },
  ])
  t.same(
    (await rls.query({ text: 'SELECT $1::int AS n' }, [8])).rows,
    [{ n: 8 }],
    'values beside a config',
  )
  const mapped: [string, string, unknown[], string][] = [
    ['a bad uuid', 'SELECT $1::uuid', ['x'], 'KH_BAD_REQUEST'],
    ['a unique key', 'INSERT INTO groups (id, name) VALUES ($1, $2)', [G1, 'dup'], 'KH_CONFLICT'],
    ['a missing table', 'SELECT * FROM nowhere', [], 'KH_DATABASE_ERROR'],
    [
      'a foreign key',
      'INSERT INTO posts (thread_id, content, author) VALUES ($1, $2, $3)',
      ['00000000-0000-4000-8000-0000000000ff', 'c', 'a'],
      'KH_CONFLICT',
    ],
  ]
  for (const [name, text, values, code] of mapped) {
    const error = await rls.query(text, values).catch((e: unknown) => e)
    t.match(error, { code }, name)
    t.notMatch(
      String((error as Error).message),
      /nowhere|groups|posts|violates/,
      'the server message stays in cause',
    )
    t.ok((error as { cause?: { code?: string } }).cause?.code, 'cause kept')
  }
  for (const mode of [undefined, 'RLS', 'guard']) {
    await t.rejects(
      bindPolicies(policies, pool, alice, { mode: mode as 'rls' }).query('SELECT 1'),
      { code: 'KH_UNGUARDED_SQL' },
      `mode ${mode}: anything but 'rls' is 'guard'`,
    )
  }
})

t.test('an sql`…` statement runs as a prepared statement named after its text', async (t) => {
  const client = await pool.connect()
  t.teardown(() => client.release())
  const prepared = async () =>
    (
      await client.query<{ name: string }>(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'keyhole\\_sql\\_%'",
      )
    ).rows.map((row) => row.name)
  const carol = makeCapability({ subject: 'carol', groups: { member: [G1, G2, G3] } })
  const titles: string[][] = []
  for (const capability of [alice, bob, carol, alice]) {
    const h = bindPolicies(policies, client, capability)
    const guard = h.guard('discussion_threads', 'read', { alias: 't' })
    const { rows } = await h.query<{ title: string }>(
      sql`SELECT t.title FROM discussion_threads t WHERE ${guard} ORDER BY t.title`,
    )
    titles.push(rows.map((row) => row.title))
  }
  t.same(titles, [['one', THREE], ['two'], ['one', THREE, 'two'], ['one', THREE]])
  const [name, ...others] = await prepared()
  t.match(name, /^keyhole_sql_[0-9a-f]{32}$/, 'named after its text')
  t.same(others, [], 'one statement for every holder: the groups are parameters')

  // The option prepared: false (PgBouncer without max_prepared_statements): nothing is named.
  await client.query('DEALLOCATE ALL')
  const unprepared = bindPolicies(policies, client, bob, { prepared: false })
  const guard = unprepared.guard('discussion_threads', 'read', { alias: 't' })
  const { rows } = await unprepared.query<{ title: string }>(
    sql`SELECT t.title FROM discussion_threads t WHERE ${guard}`,
  )
  t.same(rows, [{ title: 'two' }])
  t.same(await prepared(), [], 'prepared: false names nothing')
})
