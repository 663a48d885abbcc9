/**
 * A connection leaves a request clean or not at all. The attacker's statements below stand in for
 * an SQL injection inside her own request (raw SQL as the runtime role); the next request on the
 * same pooled connection (pool of max 1) is another user's, and must neither fail, lose its write,
 * nor run under her capability — nor she under his.
 */
import t, { type Test } from 'tap'
import {
  createSessionFactory,
  type SessionFactory,
  type SessionQueryable,
} from '../../src/db/session.ts'
import { bindPolicies } from '../../src/sql/policies.ts'
import {
  capability,
  createKeyholeDatabase,
  notesPolicies,
  storedCapability,
} from './helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)
const mallory = capability({ subject: 'mallory', groups: { member: [k.groupA] } })
const bob = capability({ subject: 'bob', groups: { moderator: [k.groupB] } })

const dirty = { code: 'KH_SESSION_DIRTY', statusCode: 500 }

/** Whether `body` is committed: read by the superuser, on another connection. */
async function committed(body: string): Promise<boolean> {
  const { rowCount } = await k.db.pool.query('SELECT 1 FROM notes WHERE body = $1', [body])
  return rowCount === 1
}

/** One pooled connection (a pool of max 1) and the sessions over it, for one test. */
type Connection = ReturnType<typeof connection>

function connection() {
  const pool = k.runtimePool(1)
  const sessions = createSessionFactory({ pool, signingKey: k.signingKey })
  return {
    pool,
    sessions,
    async pid(): Promise<number> {
      const read = await sessions.runOne<{ pid: number }>(bob, 'SELECT pg_backend_pid() AS pid')
      return read.rows[0]!.pid
    },
    /** Bob's guarded insert as an adapter runs it in 'statement' mode: one round trip, no reset. */
    bobInserts(body: string): Promise<unknown> {
      const handle = bindPolicies(notesPolicies, sessions.autocommit(bob), bob)
      return handle.insert('notes', { group_id: k.groupB, owner: 'bob', body })
    },
    /** Bob's named statement and a transaction of his: both of keyhole's statements are used. */
    async bobReads(t: Test, label: string, transactionFirst = false): Promise<void> {
      const named = async () => {
        const read = await sessions.runOne(bob, { ...notesByGroup, values: [k.groupB] })
        t.same(read.rows, [{ sees: true }], `${label}: bob's named statement`)
      }
      const transaction = async () => {
        const subject = await sessions.withCapability(
          bob,
          async (db) => (await db.query('SELECT keyhole.subject() AS s')).rows,
        )
        t.same(subject, [{ s: 'bob' }], `${label}: bob's transaction`)
      }
      for (const read of transactionFirst ? [transaction, named] : [named, transaction])
        await read()
    },
  }
}

const notesByGroup = {
  name: 'hygiene_notes_by_group',
  text: `SELECT bool_or(body = 'b') AS sees FROM notes WHERE group_id = $1`,
}

// Item 1: a statement that turns the one-statement path's implicit transaction into an explicit
// one, left open after the Sync. (SET TRANSACTION's options, as in `BEGIN ISOLATION LEVEL …`, are
// refused there: the capability's statement already ran.)
const openers = ['BEGIN', 'START TRANSACTION', 'BEGIN READ WRITE', 'START TRANSACTION READ ONLY']

for (const [i, opener] of openers.entries()) {
  t.test(`runOne: ${opener} fails its request and the connection is destroyed`, async (t) => {
    const c = connection()
    const before = await c.pid()
    await t.rejects(c.sessions.runOne(mallory, opener), dirty, 'the request that left it so fails')
    t.not(await c.pid(), before, 'the connection it left open was destroyed')
    const body = `bob-${i}`
    await c.bobInserts(body)
    const plain = await c.pool.query(
      `SELECT ${storedCapability} AS capability, now() = statement_timestamp() AS fresh`,
    )
    t.same(
      plain.rows,
      [{ capability: '', fresh: true }],
      'a plain query on the connection runs outside any transaction and capability',
    )
    t.ok(await committed(body), "bob's write is committed at once")
    await c.sessions.runOne(mallory, 'ROLLBACK')
    t.ok(await committed(body), "her later ROLLBACK cannot discard bob's write")
  })
}

t.test(
  'withCapability: a transaction reopened inside the work is closed by its COMMIT',
  async (t) => {
    const c = connection()
    const before = await c.pid()
    await c.sessions.withCapability(mallory, async (db) => {
      await db.query('SELECT 1')
      await db.query('COMMIT')
      await db.query('BEGIN')
    })
    await c.sessions.withCapability(mallory, async (db) => {
      await db.query('SELECT 1')
      await db.query('COMMIT; BEGIN')
    })
    await c.bobInserts('bob-with')
    const plain = await c.pool.query(
      `SELECT pg_backend_pid() AS pid, ${storedCapability} AS capability,
       now() = statement_timestamp() AS fresh`,
    )
    t.same(plain.rows, [{ pid: before, capability: '', fresh: true }], 'the same connection, idle')
    t.ok(await committed('bob-with'), "bob's write is committed at once")
  },
)

// Item 4: keyhole's own prepared statement (and the application's) dropped by an injection.
interface Attack {
  readonly name: string
  /** The statements as a withCapability work runs them, one query each. */
  readonly many: readonly string[]
  /** The same as one statement of the one-statement path, where the protocol allows it. */
  readonly one?: string
}

const drops: Attack[] = [
  {
    name: 'DEALLOCATE keyhole_set_capability',
    many: ['DEALLOCATE keyhole_set_capability'],
    one: 'DEALLOCATE keyhole_set_capability',
  },
  { name: 'DEALLOCATE ALL', many: ['DEALLOCATE ALL'], one: 'DEALLOCATE ALL' },
  // DISCARD ALL refuses to run in a transaction block: it needs the transaction ended first.
  { name: 'DISCARD ALL', many: ['COMMIT', 'DISCARD ALL', 'BEGIN'] },
  { name: 'DISCARD PLANS', many: ['DISCARD PLANS'], one: 'DISCARD PLANS' },
]

/** The attack run as a withCapability work (one query each) or as one runOne statement. */
function attacker(sessions: SessionFactory, shape: 'withCapability' | 'runOne', attack: Attack) {
  if (shape === 'runOne') return sessions.runOne(mallory, attack.one as string)
  return sessions.withCapability(mallory, async (db) => {
    for (const s of attack.many) await db.query(s)
  })
}

for (const attack of drops) {
  const shapes =
    attack.one === undefined
      ? (['withCapability'] as const)
      : (['withCapability', 'runOne'] as const)
  for (const shape of shapes) {
    t.test(`${shape}: ${attack.name} does not break the next request`, async (t) => {
      const c = connection()
      // Both of keyhole's statements and bob's own are parsed on this connection.
      await c.bobReads(t, 'before')
      const before = await c.pid()
      await attacker(c.sessions, shape, attack)
      // The next request meets the dropped statement in its first round trip, either shape.
      await c.bobReads(t, 'after', shape === 'withCapability')
      const body = `bob-${shape}-${attack.name}`
      await c.bobInserts(body)
      t.ok(await committed(body), "bob's write")
      t.equal(await c.pid(), before, 'recovered on the same connection')
    })
  }
}

t.test("an application's statement dropped by name", async (t) => {
  const c = connection()
  await c.bobReads(t, 'before')
  const before = await c.pid()
  await c.sessions.runOne(mallory, `DEALLOCATE ${notesByGroup.name}`)
  await c.bobReads(t, 'first in its request: recovered')
  t.equal(await c.pid(), before, 'on the same connection')
  await c.sessions.runOne(mallory, `DEALLOCATE ${notesByGroup.name}`)
  await t.rejects(
    c.sessions.withCapability(bob, async (db) => {
      await db.query('SELECT 1')
      await db.query({ ...notesByGroup, values: [k.groupB] })
    }),
    { code: '26000' },
    'later in a transaction: that one request fails (its earlier statements cannot be replayed)',
  )
  t.not(await c.pid(), before, 'and its connection is destroyed')
  await c.bobReads(t, 'the next request')
})

// Whatever else the request's SQL could leave in the session: each is undone by the reset.
interface Leftover extends Attack {
  readonly one: string
  /** What the next request on the connection finds. */
  check(c: Connection): Promise<unknown>
  readonly clean: unknown
}

const first = async (c: Connection, text: string) => (await c.sessions.runOne(bob, text)).rows[0]

const leftovers: Leftover[] = [
  {
    name: 'session-level advisory locks',
    many: ['SELECT pg_advisory_lock(4242)', 'SELECT pg_advisory_lock_shared(4243)'],
    one: 'SELECT pg_advisory_lock(4242)',
    check: (c) =>
      first(
        c,
        `SELECT count(*)::int AS held FROM pg_locks
         WHERE locktype = 'advisory' AND pid = pg_backend_pid()`,
      ),
    clean: { held: 0 },
  },
  {
    name: 'a cursor WITH HOLD',
    many: ['DECLARE hygiene CURSOR WITH HOLD FOR SELECT body FROM notes'],
    one: 'DECLARE hygiene CURSOR WITH HOLD FOR SELECT body FROM notes',
    check: (c) => first(c, `SELECT count(*)::int AS open FROM pg_cursors WHERE name = 'hygiene'`),
    clean: { open: 0 },
  },
  {
    name: "a sequence's currval",
    many: [`SELECT nextval('notes_id_seq')`],
    one: `SELECT nextval('notes_id_seq')`,
    check: (c) =>
      first(c, 'SELECT lastval()').then(
        () => 'readable',
        (error: { code?: string }) => error.code,
      ),
    clean: '55000',
  },
  {
    name: 'read-only transactions by default',
    many: ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY'],
    one: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
    check: async (c) => {
      await c.bobInserts('bob-after-read-only')
      return first(c, `SELECT current_setting('default_transaction_read_only') AS ro`)
    },
    clean: { ro: 'off' },
  },
  {
    name: 'her capability copied into the session',
    // The signed store's setting (the sealed one refuses the runtime role: keyhole-schema.test.ts).
    many: [`SELECT set_config('keyhole.capability', ${storedCapability}, false)`],
    one: `SELECT set_config('keyhole.capability', ${storedCapability}, false)`,
    check: async (c) => (await c.pool.query(`SELECT ${storedCapability} AS c`)).rows[0],
    clean: { c: '' },
  },
  {
    name: 'SET SESSION AUTHORIZATION to herself',
    many: [`SET SESSION AUTHORIZATION "${k.runtime.name}"`],
    one: `SET SESSION AUTHORIZATION "${k.runtime.name}"`,
    check: (c) => first(c, 'SELECT session_user::text AS s, current_user::text AS c'),
    clean: { s: k.runtime.name, c: k.runtime.name },
  },
]

for (const leftover of leftovers) {
  for (const shape of ['withCapability', 'runOne'] as const) {
    t.test(`${shape}: ${leftover.name} do not reach the next request`, async (t) => {
      const c = connection()
      await attacker(c.sessions, shape, leftover)
      t.same(await leftover.check(c), leftover.clean)
    })
  }
}

t.test('SET SESSION AUTHORIZATION to another role is refused', async (t) => {
  const c = connection()
  await t.rejects(c.sessions.runOne(mallory, `SET SESSION AUTHORIZATION "${k.migrator.name}"`), {
    code: '42501',
  })
  await c.bobReads(t, 'after')
})

t.test('the checks ride in round trips the request makes anyway', async (t) => {
  let trips = 0
  const runtime = k.runtimePool(1)
  const counting = createSessionFactory({
    signingKey: k.signingKey,
    pool: {
      async connect() {
        const client = await runtime.connect()
        return {
          query: (query: unknown, values?: unknown) => {
            trips++
            return client.query(query as string, values as unknown[])
          },
          release: (error?: Error | boolean) => client.release(error),
        }
      },
    },
  })
  const roundTrips = async (work: () => Promise<unknown>) => {
    trips = 0
    await work()
    return trips
  }
  const insert = (db: SessionQueryable, body: string) =>
    bindPolicies(notesPolicies, db, bob).insert('notes', { group_id: k.groupB, owner: 'bob', body })
  t.equal(
    await roundTrips(() => insert(counting.autocommit(bob), 'trip 1')),
    1,
    "a guarded insert, 'statement' mode",
  )
  t.equal(
    await roundTrips(() => counting.withCapability(bob, (db) => insert(db, 'trip 2'))),
    2,
    "a guarded insert, 'request' mode: BEGIN with it, COMMIT",
  )
  t.equal(
    await roundTrips(() => counting.runOne(bob, 'SELECT 1')),
    1,
    'own SQL: the reset goes with it',
  )
  t.equal(
    await roundTrips(() => counting.withCapability(bob, (db) => db.query('SELECT 1'))),
    2,
    'own SQL in a transaction: the reset goes with the COMMIT',
  )
})
