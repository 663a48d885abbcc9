/**
 * Behind PgBouncer in transaction-pooling mode, each transaction may run on another server
 * connection: the capability must still never cross users, and nothing may outlive a transaction.
 */
import pg from 'pg'
import t from 'tap'
import { createSessionFactory } from '../../src/db/session.ts'
import { capability, createKeyholeDatabase } from './helpers/keyhole.ts'
import { findPgbouncer, startPgbouncer } from './helpers/pgbouncer.ts'

if (findPgbouncer() === undefined) {
  t.skip(
    'pgbouncer is not on PATH: the PgBouncer tests need it (apt-get install pgbouncer)',
    async () => {},
  )
} else {
  const k = await createKeyholeDatabase(t)
  const url = (await startPgbouncer(t, k.db.url, k.runtime))!
  // 4 clients of keyhole over 2 server connections: transactions interleave across them.
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  t.teardown(() => pool.end())
  // PgBouncer before 1.21 cannot carry named prepared statements in transaction mode.
  const sessions = createSessionFactory({ pool, signingKey: k.signingKey, prepared: false })
  const users = [
    { capability: capability({ subject: 'alice', groups: { member: [k.groupA] } }), expected: 'a' },
    { capability: capability({ subject: 'bob', groups: { member: [k.groupB] } }), expected: 'b' },
    { capability: capability({ subject: 'nobody' }), expected: '' },
  ]
  const read = "SELECT coalesce(string_agg(body, ',' ORDER BY id), '') AS bodies FROM notes"

  t.test('no row crosses users, sequentially or concurrently', async (t) => {
    let mismatches = 0
    const request = async (i: number) => {
      const user = users[i % users.length]!
      const result =
        i % 2 === 0
          ? await sessions.runOne<{ bodies: string }>(user.capability, read)
          : await sessions.withCapability(user.capability, async (db) => {
              await db.query('SELECT pg_sleep(0.001)')
              return db.query<{ bodies: string }>(read)
            })
      if (result.rows[0]!.bodies !== user.expected) mismatches++
    }
    for (let i = 0; i < 30; i++) await request(i)
    await Promise.all(Array.from({ length: 200 }, (_, i) => request(i)))
    t.equal(mismatches, 0)
  })

  t.test('between transactions the server connections hold no capability', async (t) => {
    await sessions.runOne(users[0]!.capability, read)
    await t.rejects(
      sessions.withCapability(users[0]!.capability, async (db) => db.query('SELECT 1/0')),
      { code: '22012' },
    )
    const plain = await Promise.all(
      Array.from({ length: 4 }, () =>
        pool.query(
          `SELECT coalesce(current_setting('keyhole.capability', true), '') AS s, (${read}) AS bodies`,
        ),
      ),
    )
    t.same(
      plain.map((r) => r.rows[0]),
      Array(4).fill({ s: '', bodies: '' }),
    )
  })
}
