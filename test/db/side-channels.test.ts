/**
 * What the second line (row-level security) stops and what it does not, measured: an injection
 * running raw SQL as the restricted runtime role, inside a request holding a real signed
 * capability (keyhole's own setup, migration and generated policies), against a row of a group
 * the capability does not reach. docs/security-model.md states these results and nothing more.
 *
 * - Direct reads of the hidden row return nothing.
 * - Side channels PostgreSQL leaves open: built-in LEAKPROOF operators run the attacker's
 *   condition before the policy, and EXPLAIN ANALYZE shows whether the policy's sub-plans ran
 *   ("never executed"), a yes/no oracle that extracts the hidden text; the table's row counts in
 *   pg_class.reltuples and the statistics views and functions; the planner's estimates, built from
 *   statistics pg_stats hides; other backends of the same role (their statement text, and
 *   pg_terminate_backend).
 */
import t from 'tap'
import pg from 'pg'
import { createSessionFactory, type SessionQueryable } from '../../src/db/session.ts'
import { capability, createKeyholeDatabase } from './helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)
// Group B's rows are hidden from mallory, a member of group A only. Serial IDs: guessable. They
// are written on a client that flushes its statistics as soon as it is idle (else within 10 s).
const SECRET = 'tiger42'
const writer = new pg.Client({ connectionString: k.db.url })
await writer.connect()
await writer.query('SELECT pg_stat_force_next_flush()')
const hiddenId = (
  await writer.query<{ id: number }>(
    `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'bob', $2) RETURNING id`,
    [k.groupB, SECRET],
  )
).rows[0]!.id
await writer.query(
  `INSERT INTO notes (group_id, owner, body) SELECT $1, 'bob', 'filler' FROM generate_series(1, 9)`,
  [k.groupB],
)
await writer.end()
const visibleRows = 1 // group A's note, 'a'
const hiddenRows = 11 // group B's note 'b', the secret, 9 fillers
const hiddenWritten = 10 // by the writer above (the helper's two rows count when their client flushes)

const pool = k.runtimePool(2)
const sessions = createSessionFactory({ pool, signingKey: k.signingKey })
const mallory = capability({ subject: 'mallory', groups: { member: [k.groupA] } })
const asMallory = <R>(work: (db: SessionQueryable) => Promise<R>) =>
  sessions.withCapability(mallory, work)

/** A connection of the runtime role outside any request: another user's pooled connection. */
async function runtimeClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: k.runtimeUrl })
  client.on('error', () => {}) // a terminated backend reports here
  await client.connect()
  return client
}

t.test('direct reads of a hidden row return nothing', async (t) => {
  await asMallory(async (db) => {
    t.same(
      (await db.query('SELECT body FROM notes ORDER BY id')).rows,
      [{ body: 'a' }],
      'the table: only the capability’s group',
    )
    t.same(
      (await db.query('SELECT count(*)::int AS n FROM notes')).rows,
      [{ n: visibleRows }],
      'the count',
    )
    t.same((await db.query('SELECT body FROM notes WHERE id = $1', [hiddenId])).rows, [], 'by id')
    t.same(
      (await db.query(`SELECT id FROM notes WHERE body ~>=~ 't' AND body ~<~ 'u'`)).rows,
      [],
      'the oracle’s own condition, as a query: no row',
    )
    t.same(
      (await db.query(`UPDATE notes SET body = 'x' WHERE id = $1 RETURNING id`, [hiddenId])).rows,
      [],
      'nor changed',
    )
  })
  await t.rejects(
    asMallory((db) => db.query('SELECT * FROM keyhole.signing_key')),
    { code: '42501' },
    'nor the key that would mint a capability',
  )
})

/**
 * Whether the row `id` has a body in [low, high), asked as mallory through the plan alone: `~>=~`
 * and `~<~` (text_pattern_ge/lt) are LEAKPROOF built-ins, so the planner evaluates them before the
 * policy, and the policy's sub-plans (InitPlans) run only when a row passed them.
 */
async function inRange(db: SessionQueryable, id: number, low: string, high: string) {
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(
    `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
     SELECT id FROM notes WHERE id = $1 AND body ~>=~ $2 AND body ~<~ $3`,
    [id, low, high],
  )
  return !rows.some((row) => row['QUERY PLAN'].includes('never executed'))
}

/** Whether the body starts with `prefix` (printable ASCII sorts below 0x7f). */
const startsWith = (db: SessionQueryable, id: number, prefix: string) =>
  inRange(db, id, prefix, `${prefix}\x7f`)

t.test('EXPLAIN ANALYZE: a yes/no oracle on the hidden text', async (t) => {
  const cases: [string, boolean][] = [
    ['t', true],
    ['tig', true],
    [SECRET, true],
    ['u', false],
    ['tiG', false],
    [`${SECRET}x`, false],
  ]
  await asMallory(async (db) => {
    for (const [prefix, expected] of cases) {
      t.equal(await startsWith(db, hiddenId, prefix), expected, `starts with '${prefix}'`)
    }
  })
})

t.test('the oracle extracts the hidden text, at most 7 queries a character', async (t) => {
  let queries = 0
  const extracted = await asMallory(async (db) => {
    let known = ''
    for (;;) {
      // Bisection over the printable characters 0x20..0x7e (95: 7 questions) for the largest c
      // such that the body starts with `known` followed by a character >= c; 0x1f: the body ends.
      let lo = 0x1f
      let hi = 0x7e
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2)
        queries++
        if (await inRange(db, hiddenId, known + String.fromCharCode(mid), `${known}\x7f`)) lo = mid
        else hi = mid - 1
      }
      if (lo === 0x1f) return known
      known += String.fromCharCode(lo)
    }
  })
  t.equal(extracted, SECRET, 'the hidden text, read through the plan alone')
  t.ok(queries <= 7 * (SECRET.length + 1), 'at most 7 a character, and 7 to see that it ends')
  t.comment(`${SECRET.length} characters extracted in ${queries} queries`)
})

t.test('row counts of a guarded table are visible', async (t) => {
  await k.db.pool.query('ANALYZE notes')
  const counters = async (db: SessionQueryable) =>
    (
      await db.query<{ reltuples: number; inserted: number }>(
        `SELECT c.reltuples::int AS reltuples, pg_stat_get_tuples_inserted(c.oid)::int AS inserted
         FROM pg_class c WHERE c.oid = 'public.notes'::regclass`,
      )
    ).rows[0]!
  const total = visibleRows + hiddenRows
  // The writer's counters reach the shared statistics once it is idle: wait for them.
  let seen = { reltuples: 0, inserted: 0 }
  for (let i = 0; i < 100 && seen.inserted < hiddenWritten; i++) {
    seen = await asMallory(counters)
    if (seen.inserted < hiddenWritten) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(seen.reltuples, total, 'pg_class.reltuples: every row as of ANALYZE, hidden ones too')
  t.ok(seen.inserted >= hiddenWritten, 'pg_stat_get_tuples_inserted: hidden inserts counted')
  const view = await asMallory(
    async (db) =>
      (
        await db.query<{ n: number }>(
          `SELECT n_tup_ins::int AS n FROM pg_stat_user_tables WHERE relid = 'public.notes'::regclass`,
        )
      ).rows[0]!.n,
  )
  t.ok(view >= hiddenWritten, 'pg_stat_user_tables: the same counter')

  // Revoking the view closes the view, not the channel: the functions behind it and pg_class stay.
  await k.db.pool.query('REVOKE SELECT ON pg_catalog.pg_stat_user_tables FROM PUBLIC')
  await t.rejects(
    asMallory((db) => db.query('SELECT n_tup_ins FROM pg_stat_user_tables')),
    { code: '42501' },
    'the view, revoked',
  )
  const after = await asMallory(counters)
  t.equal(after.reltuples, total, 'pg_class.reltuples, still')
  t.ok(after.inserted >= hiddenWritten, 'pg_stat_get_tuples_inserted, still')
})

t.test('other backends of the same role: their statement text, and a kill', async (t) => {
  const victim = await runtimeClient()
  const victimPid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
    .pid
  // The victim's request: a statement with a literal in its text and a value as a parameter.
  const running = victim.query(`SELECT pg_sleep(1), 'literal-in-text', $1::text`, ['bound-value'])
  let text = ''
  for (let i = 0; i < 50 && !text.includes('pg_sleep'); i++) {
    text = await asMallory(
      async (db) =>
        (
          await db.query<{ query: string }>('SELECT query FROM pg_stat_activity WHERE pid = $1', [
            victimPid,
          ])
        ).rows[0]?.query ?? '',
    )
    if (!text.includes('pg_sleep')) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.match(text, /literal-in-text/, 'the statement text of another user’s request')
  t.notMatch(text, /bound-value/, 'not its parameters')
  await running

  const killed = await asMallory(
    async (db) =>
      (
        await db.query<{ killed: boolean }>('SELECT pg_terminate_backend($1) AS killed', [
          victimPid,
        ])
      ).rows[0]!.killed,
  )
  t.equal(killed, true, 'pg_terminate_backend on a backend of the same role')
  await t.rejects(victim.query('SELECT 1'), 'the victim’s connection is gone')
  await victim.end().catch(() => {})

  const migrator = new pg.Client({ connectionString: k.migratorUrl })
  await migrator.connect()
  t.teardown(() => migrator.end())
  const migratorPid = (await migrator.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
    .rows[0]!.pid
  const theirs = await asMallory(
    async (db) =>
      (
        await db.query<{ query: string }>('SELECT query FROM pg_stat_activity WHERE pid = $1', [
          migratorPid,
        ])
      ).rows[0]!.query,
  )
  t.equal(theirs, '<insufficient privilege>', 'not the statement text of another role')
  await t.rejects(
    asMallory((db) => db.query('SELECT pg_terminate_backend($1)', [migratorPid])),
    { code: '42501' },
    'not a backend of another role',
  )
})

t.test('planner estimates: whether a guessed value is frequent among hidden rows', async (t) => {
  // 200 hidden rows share one value; mallory's group has 200 distinct ones.
  await k.db.pool.query(
    `INSERT INTO notes (group_id, owner, body) SELECT $1, 'bob', 'only-hidden' FROM generate_series(1, 200)`,
    [k.groupB],
  )
  await k.db.pool.query(
    `INSERT INTO notes (group_id, owner, body) SELECT $1, 'alice', 'note ' || i FROM generate_series(1, 200) i`,
    [k.groupA],
  )
  await k.db.pool.query('ANALYZE notes')
  const estimate = (db: SessionQueryable, value: string) =>
    db
      .query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT id FROM notes WHERE body = $1', [value])
      .then(({ rows }) => Number(/rows=(\d+)/.exec(rows[0]!['QUERY PLAN'])![1]))
  await asMallory(async (db) => {
    t.same(
      (await db.query(`SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'notes'`)).rows,
      [{ n: 0 }],
      'pg_stats hides the statistics of a table whose row security applies',
    )
    t.same(
      (await db.query(`SELECT count(*)::int AS n FROM notes WHERE body = 'only-hidden'`)).rows,
      [{ n: 0 }],
      'no row has the value, as mallory reads',
    )
    t.ok((await estimate(db, 'only-hidden')) >= 100, 'yet the plan expects many')
    t.equal(await estimate(db, 'only-hiddem'), 1, 'and one for a value no row has')
  })
})
