/**
 * `keyhole setup` closes what KH_DB_STATEMENT_STATS_READABLE reports: with pg_stat_statements
 * installed (here after a first setup, as an operator might), its views and function are revoked from PUBLIC and granted to pg_read_all_stats, so
 * the start-up checks pass on what setup built (and monitoring through pg_monitor still reads it).
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { checkDatabase } from '../../src/db/check-database.ts'
import { setup } from '../../src/db/setup.ts'
import { createTestDatabase } from '../helpers/database.ts'

const db = await createTestDatabase(t)
const role = (name: string) => ({
  name: `${db.prefix}_${name}`,
  password: randomBytes(18).toString('base64url'),
})
const migrationRole = role('migrator')
const runtimeRole = role('runtime')
const options = {
  guardedTables: [],
  migrationRole: migrationRole.name,
  signingKeyTable: 'keyhole.signing_key',
}

async function asRuntime<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: db.urlAs(runtimeRole.name, runtimeRole.password),
  })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

t.test('installed after setup: reported; setup again: closed', async (t) => {
  await setup(db.url, { migrationRole, runtimeRole })
  const check = () => asRuntime((client) => checkDatabase(client, options))
  t.same(await check(), [], 'setup alone passes')
  await db.pool.query('CREATE EXTENSION pg_stat_statements SCHEMA public')
  t.same(
    (await check()).map((f) => f.code),
    ['KH_DB_STATEMENT_STATS_READABLE'],
  )
  await setup(db.url, { migrationRole, runtimeRole, signingKey: false })
  const seen = await asRuntime(async (client) => {
    const { rows } = await client.query(
      `SELECT has_table_privilege('public.pg_stat_statements', 'SELECT') AS view,
         has_function_privilege('public.pg_stat_statements(boolean)', 'EXECUTE') AS fn`,
    )
    return rows[0]
  })
  t.same(seen, { view: false, fn: false })
  const { rows } = await db.pool.query(
    `SELECT has_table_privilege('pg_read_all_stats', 'public.pg_stat_statements', 'SELECT') AS ok`,
  )
  t.same(rows, [{ ok: true }], 'pg_read_all_stats (so pg_monitor) still reads it')
  t.same(await check(), [], 'no finding')
})
