/**
 * The request session over a pool of the RUNTIME role: one transaction (or one implicit
 * transaction) per request that sets the signed capability first; nothing of it survives on the
 * pooled connection; a failure destroys the connection.
 */
import t from 'tap'
import { createSessionFactory, type SessionPool } from '../../src/db/session.ts'
import { capability, createKeyholeDatabase, storedCapability } from './helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)
const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
const bob = capability({ subject: 'bob', groups: { moderator: [k.groupB] } })
const nobody = capability({ subject: 'nobody' })

/** A pool that records how each client was released. */
function recording(pool: SessionPool) {
  const releases: (Error | boolean | undefined)[] = []
  return {
    releases,
    pool: {
      async connect() {
        const client = await pool.connect()
        return {
          query: client.query.bind(client),
          release(error?: Error | boolean) {
            releases.push(error)
            client.release(error)
          },
        }
      },
    },
  }
}

t.test('withCapability: the statements share one transaction with the capability', async (t) => {
  const sessions = createSessionFactory({ pool: k.runtimePool(), signingKey: k.signingKey })
  const result = await sessions.withCapability(alice, async (db) => {
    const inserted = await db.query<{ id: number }>(
      `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'alice', 'second') RETURNING id`,
      [k.groupA],
    )
    const read = await db.query({ text: 'SELECT body FROM notes ORDER BY id' })
    const subject = await db.query('SELECT keyhole.subject() AS subject')
    return { inserted: inserted.rowCount, read: read.rows, subject: subject.rows }
  })
  t.same(result, {
    inserted: 1,
    read: [{ body: 'a' }, { body: 'second' }],
    subject: [{ subject: 'alice' }],
  })
  await k.db.pool.query(`DELETE FROM notes WHERE body = 'second'`)
})

t.test('runOne: one statement in one round trip, with the capability', async (t) => {
  const sessions = createSessionFactory({ pool: k.runtimePool(), signingKey: k.signingKey })
  t.same((await sessions.runOne(alice, 'SELECT body FROM notes')).rows, [{ body: 'a' }])
  t.same((await sessions.runOne(bob, { text: 'SELECT body FROM notes' })).rows, [{ body: 'b' }])
  t.same((await sessions.runOne(nobody, 'SELECT body FROM notes')).rows, [])
  const named = { name: 'notes_by_group', text: 'SELECT body FROM notes WHERE group_id = $1' }
  for (let i = 0; i < 3; i++) {
    t.same((await sessions.runOne(bob, { ...named, values: [k.groupB] })).rows, [{ body: 'b' }])
  }
  const updated = await sessions.runOne(bob, `UPDATE notes SET body = body RETURNING owner`)
  t.same([updated.command, updated.rowCount, updated.rows], ['UPDATE', 1, [{ owner: 'bob' }]])
  t.same(
    (await sessions.autocommit(alice).query('SELECT keyhole.subject() AS s')).rows,
    [{ s: 'alice' }],
    'autocommit: each statement is a runOne',
  )
  t.same(
    (await sessions.runOne(alice, 'SELECT $1::int[] AS a', [[1, 2]])).rows,
    [{ a: [1, 2] }],
    "values go through pg's own serialiser",
  )
})

t.test('autocommit: one queryable per capability, never shared between capabilities', async (t) => {
  const sessions = createSessionFactory({ pool: k.runtimePool(), signingKey: k.signingKey })
  const forAlice = sessions.autocommit(alice)
  t.equal(sessions.autocommit(alice), forAlice, "the same capability (a cached token's): reused")
  t.not(sessions.autocommit(bob), forAlice)
  t.ok(Object.isFrozen(forAlice))
  const read = 'SELECT body, keyhole.subject() AS s FROM notes'
  t.same((await forAlice.query(read)).rows, [{ body: 'a', s: 'alice' }])
  t.same((await sessions.autocommit(bob).query(read)).rows, [{ body: 'b', s: 'bob' }])
  t.same((await forAlice.query(read)).rows, [{ body: 'a', s: 'alice' }], 'after bob, alice again')
})

t.test('a client that does not report its transaction status (pg before 8.21)', async (t) => {
  const { releases, pool } = recording(k.runtimePool(1))
  const sessions = createSessionFactory({ pool, signingKey: k.signingKey })
  t.same((await sessions.runOne(alice, 'SELECT body FROM notes')).rows, [{ body: 'a' }])
  await t.rejects(sessions.runOne(alice, 'BEGIN'), { code: 'KH_SESSION_DIRTY' }, 'BEGIN left open')
  t.same(
    await sessions.withCapability(
      bob,
      async (db) => (await db.query('SELECT body FROM notes')).rows,
    ),
    [{ body: 'b' }],
  )
  t.same(
    releases.map((r) => (r instanceof Error ? 'error' : r)),
    [undefined, 'error', undefined],
    'the dirty connection destroyed, the others released',
  )
})

t.test('a pool that cannot connect: 503 KH_UNAVAILABLE, the driver unnamed', async (t) => {
  const down = new Error('connect ECONNREFUSED 10.0.0.1:5432')
  const sessions = createSessionFactory({
    pool: { connect: () => Promise.reject(down) },
    signingKey: k.signingKey,
  })
  const unavailable = { code: 'KH_UNAVAILABLE', statusCode: 503, cause: down }
  await t.rejects(sessions.runOne(alice, 'SELECT 1'), unavailable)
  await t.rejects(sessions.autocommit(alice).query('SELECT 1'), unavailable)
  await t.rejects(
    sessions.withCapability(alice, async (db) => db.query('SELECT 1')),
    unavailable,
  )
})

t.test('a client whose query throws: the request fails, the client is destroyed', async (t) => {
  const broken = new Error('query threw')
  const releases: unknown[] = []
  const sessions = createSessionFactory({
    pool: {
      connect: async () => ({
        query() {
          throw broken
        },
        release: (error?: Error | boolean) => releases.push(error),
      }),
    },
    signingKey: k.signingKey,
  })
  await t.rejects(sessions.runOne(alice, 'SELECT 1'), broken)
  await t.rejects(
    sessions.withCapability(alice, async (db) => db.query('SELECT 1')),
    broken,
  )
  t.same(releases, [broken, broken])
})

t.test('after COMMIT or ROLLBACK the setting is gone on the same connection', async (t) => {
  const pool = k.runtimePool(1)
  const sessions = createSessionFactory({ pool, signingKey: k.signingKey })
  const read = `SELECT ${storedCapability} AS setting, pg_backend_pid() AS pid,
    (SELECT count(*)::int FROM notes) AS visible`
  const inside = await sessions.withCapability(alice, async (db) => (await db.query(read)).rows[0]!)
  t.equal(inside.visible, 1)
  t.match(inside.setting, /^keyhole_/, 'stored, sealed, inside')
  const afterCommit = (await pool.query(read)).rows[0]!
  t.same(afterCommit, { setting: '', pid: inside.pid, visible: 0 }, 'after COMMIT')
  await t.rejects(
    sessions.withCapability(alice, async (db) => {
      await db.query(read)
      throw new Error('handler failed')
    }),
    { message: 'handler failed' },
  )
  const afterRollback = (await pool.query(read)).rows[0]!
  // The failed connection was destroyed: the next one is fresh, the setting never set.
  t.same([afterRollback.setting, afterRollback.visible], ['', 0], 'after ROLLBACK')
  t.not(afterRollback.pid, inside.pid, 'the failed connection was destroyed, not reused')
  const one = await sessions.runOne(alice, read)
  t.equal(one.rows[0]!.visible, 1)
  const afterOne = (await pool.query(read)).rows[0]!
  t.same(
    [afterOne.setting, afterOne.visible, afterOne.pid],
    ['', 0, one.rows[0]!.pid],
    'after runOne',
  )
})

t.test('a failure releases the client with the error; success releases it plainly', async (t) => {
  const { releases, pool } = recording(k.runtimePool())
  const sessions = createSessionFactory({ pool, signingKey: k.signingKey })
  await sessions.withCapability(alice, async (db) => db.query('SELECT 1'))
  await t.rejects(
    sessions.withCapability(alice, async (db) => db.query('SELECT * FROM missing_table')),
    { code: '42P01' },
  )
  await t.rejects(
    sessions.withCapability(alice, async (db) => {
      // The handler swallows an error: the transaction is aborted, COMMIT answers ROLLBACK.
      await db.query('SELECT 1')
      await db.query('SELECT 1/0').catch(() => {})
    }),
    { message: /rolled back/ },
  )
  await t.rejects(
    sessions.withCapability(alice, async (db) => {
      // The first statement opened the transaction: its error is the request's.
      await db.query('SELECT 1/0').catch(() => {})
    }),
    { code: '22012' },
  )
  await t.rejects(
    sessions.withCapability(alice, async () => {
      throw 'not an error'
    }),
  )
  await sessions.runOne(alice, 'SELECT 1')
  await t.rejects(sessions.runOne(alice, 'SELECT 1/0'), { code: '22012' })
  await t.rejects(
    sessions.runOne(alice, {
      text: 'SELECT $1::text',
      values: [
        {
          toPostgres: () => {
            throw new Error('bad value')
          },
        },
      ],
    }),
    { message: 'bad value' },
    'a value that cannot be serialised: nothing is sent',
  )
  t.same(
    releases.map((r) => (r instanceof Error ? 'error' : r)),
    [undefined, 'error', 'error', 'error', 'error', undefined, 'error', 'error'],
  )
})

t.test('an error in one request does not leak into the next', async (t) => {
  const sessions = createSessionFactory({ pool: k.runtimePool(1), signingKey: k.signingKey })
  await t.rejects(
    sessions.withCapability(bob, async (db) => {
      await db.query(`UPDATE notes SET body = 'changed'`)
      await db.query('SELECT 1/0')
    }),
    { code: '22012' },
  )
  t.same((await sessions.runOne(alice, 'SELECT body FROM notes')).rows, [{ body: 'a' }])
  t.same((await k.db.pool.query(`SELECT body FROM notes ORDER BY id`)).rows, [
    { body: 'a' },
    { body: 'b' },
  ])
})

t.test('the queryable is dead once the work has settled', async (t) => {
  const sessions = createSessionFactory({ pool: k.runtimePool(), signingKey: k.signingKey })
  const leaked = await sessions.withCapability(alice, async (db) => db)
  await t.rejects(leaked.query('SELECT 1'), { message: /session ended/ })
})

t.test('a key the database does not hold: KH_UNAVAILABLE, never rows', async (t) => {
  const sessions = createSessionFactory({
    pool: k.runtimePool(),
    signingKey: Buffer.alloc(32, 9),
    prepared: false,
  })
  const refused = { code: 'KH_UNAVAILABLE', statusCode: 503 }
  await t.rejects(sessions.runOne(alice, 'SELECT body FROM notes'), refused)
  await t.rejects(
    sessions.runOne(alice, `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'alice', 'x')`, [
      k.groupA,
    ]),
    refused,
    'also when the statement itself failed on the missing capability',
  )
  await t.rejects(
    sessions.withCapability(alice, async (db) => db.query('SELECT 1')),
    refused,
  )
})

t.test('many requests of different users over a pool of 2: no row crosses users', async (t) => {
  const sessions = createSessionFactory({ pool: k.runtimePool(2), signingKey: k.signingKey })
  const users = [
    { capability: alice, expected: ['a'] },
    { capability: bob, expected: ['b'] },
    { capability: nobody, expected: [] },
  ]
  const bodies = (rows: { body: string }[]) => rows.map((r) => r.body)
  let mismatches = 0
  const request = async (i: number) => {
    const user = users[i % users.length]!
    const rows =
      i % 2 === 0
        ? (
            await sessions.runOne<{ body: string }>(
              user.capability,
              'SELECT body FROM notes ORDER BY id',
            )
          ).rows
        : await sessions.withCapability(user.capability, async (db) => {
            await db.query('SELECT pg_sleep(0.001)')
            return (await db.query<{ body: string }>('SELECT body FROM notes ORDER BY id')).rows
          })
    if (JSON.stringify(bodies(rows)) !== JSON.stringify(user.expected)) mismatches++
  }
  for (let i = 0; i < 60; i++) await request(i)
  await Promise.all(Array.from({ length: 300 }, (_, i) => request(i)))
  t.equal(mismatches, 0)
})
