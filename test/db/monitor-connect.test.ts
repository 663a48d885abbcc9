/**
 * The runtime role changes its own password (issue 14, item 3): PostgreSQL allows
 * `ALTER ROLE CURRENT_USER PASSWORD …` to any role. The pool's open connections keep working, so
 * the application fails only as it opens new ones. Given a pool, the checks run on a NEW
 * connection opened with the pool's settings, so a refused login is a finding
 * (KH_DB_CONNECT_FAILED): start-up refuses, the monitor reports it and every request, `/health`
 * included, answers 503 until an administrator sets the password back.
 */
import t from 'tap'
import pg from 'pg'
import { checkDatabase } from '../../src/db/check-database.ts'
import { bearer, buildApp, mint } from '../plugins/helpers/app.ts'
import { startApp } from '../plugins/helpers/express-app.ts'
import { createKeyholeDatabase, notesPolicies } from './helpers/keyhole.ts'
import { monitoredNotesApp } from './helpers/monitored-notes-app.ts'

const k = await createKeyholeDatabase(t)
const runtime = `"${k.runtime.name}"`
const attackerPassword = 'chosen-by-the-injection-1'

/**
 * A runtime-role pool whose idle connections never time out: what is seen is the new-connection
 * check, not the pool happening to reconnect. The test database is dropped at the end, which
 * terminates them; pg reports that on the pool, where it is expected.
 */
function runtimePool(max = 2) {
  const pool = new pg.Pool({ connectionString: k.runtimeUrl, max, idleTimeoutMillis: 0 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  return pool
}

const checks = { guardedTables: [{ table: 'public.notes', operations: ['select' as const] }] }

/** The administrator's fix: the password the application connects with, set back. */
const restore = () =>
  k.db.pool.query(
    `ALTER ROLE ${runtime} PASSWORD ${pg.Client.prototype.escapeLiteral(k.runtime.password)}`,
  )

t.test('a password the runtime role changed: detected through the pool, then fixed', async (t) => {
  const pool = runtimePool(1)
  t.same(await checkDatabase(pool, checks), [], 'the database passes')
  // The injection, on the pool's one open connection.
  await pool.query(`ALTER ROLE CURRENT_USER PASSWORD '${attackerPassword}'`)
  t.teardown(restore)
  t.same((await pool.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the open connection works')

  const findings = await checkDatabase(pool, checks)
  t.match(findings, [
    {
      code: 'KH_DB_CONNECT_FAILED',
      message: /a new connection with the pool's settings failed: password authentication failed/,
      fix: /ALTER ROLE <runtime role> PASSWORD .*pg_hba\.conf/,
    },
  ])
  t.equal(findings.length, 1)
  t.notMatch(JSON.stringify(findings), k.runtime.password, 'no password in the finding')
  t.notMatch(JSON.stringify(findings), attackerPassword)

  await restore()
  t.same(await checkDatabase(pool, checks), [], 'fixed: no finding')
})

t.test('an unreachable database is the same finding, without the URL password', async (t) => {
  const pool = new pg.Pool({
    connectionString: 'postgres://nobody:url-password@127.0.0.1:1/none',
    connectionTimeoutMillis: 2000,
  })
  t.teardown(() => pool.end())
  const findings = await checkDatabase(pool, checks)
  t.match(findings, [{ code: 'KH_DB_CONNECT_FAILED', message: /ECONNREFUSED/ }])
  t.notMatch(JSON.stringify(findings), 'url-password')
})

t.test('Fastify: the monitor turns /health and every request to 503, then back', async (t) => {
  const pool = runtimePool(2)
  const { app, alice } = await monitoredNotesApp(t, k, pool)

  await pool.query(`ALTER ROLE CURRENT_USER PASSWORD '${attackerPassword}'`)
  t.teardown(restore)
  while (app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  for (const [url, headers] of [
    ['/health', {}],
    ['/notes', alice],
  ] as const) {
    const response = await app.inject({ method: 'GET', url, headers })
    t.equal(response.statusCode, 503, url)
    t.equal(response.json().code, 'KH_UNAVAILABLE')
  }

  await restore()
  while (!app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'recovered')
  t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode, 200)
})

t.test('before the monitor runs: a request on a new connection answers 503, not 500', async (t) => {
  // Idle connections close at once, so every request opens a new one; the monitor is off.
  const pool = new pg.Pool({ connectionString: k.runtimeUrl, max: 1, idleTimeoutMillis: 1 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  const { app } = await buildApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    (app) => {
      app.get('/notes', async (request) => (await request.db.select('notes')).length)
    },
  )
  const alice = bearer(
    await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] }),
  )
  t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode, 200)
  await pool.query(`ALTER ROLE CURRENT_USER PASSWORD '${attackerPassword}'`)
  t.teardown(restore)
  while (pool.totalCount > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  const response = await app.inject({ method: 'GET', url: '/notes', headers: alice })
  t.equal(response.statusCode, 503)
  t.same(response.json(), {
    statusCode: 503,
    error: 'Service Unavailable',
    message: 'Service unavailable',
    code: 'KH_UNAVAILABLE',
  })
  t.notMatch(response.body, /password|runtime/, "nothing of the driver's message")
  await restore()
  t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode, 200)
})

t.test('start-up refuses a runtime role that cannot log in', async (t) => {
  const pool = runtimePool(1)
  await pool.query('SELECT 1')
  await pool.query(`ALTER ROLE CURRENT_USER PASSWORD '${attackerPassword}'`)
  t.teardown(restore)
  const policies = notesPolicies
  await t.rejects(
    buildApp(t, {
      database: { pool, policies, signingKey: k.signingKey },
      checks: { migrationRole: k.migrator.name },
      monitor: false,
    }),
    { code: 'KH_INSECURE_DATABASE', message: /KH_DB_CONNECT_FAILED/ },
  )
})

t.test('Express: the same, through ready() and the monitor', async (t) => {
  const pool = runtimePool(2)
  const { keyhole, request } = await startApp(
    t,
    {
      database: { pool, policies: notesPolicies, signingKey: k.signingKey },
      checks: { migrationRole: k.migrator.name },
      monitor: { intervalMs: 20 },
      public: ['/health'],
    },
    (app, keyhole) => {
      app.get('/health', (_req, res) => {
        keyhole.assertHealthy()
        res.json('ok')
      })
    },
  )
  t.equal((await request('GET', '/health')).status, 200)
  await pool.query(`ALTER ROLE CURRENT_USER PASSWORD '${attackerPassword}'`)
  t.teardown(restore)
  while (keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  const unhealthy = await request('GET', '/health')
  t.equal(unhealthy.status, 503)
  t.match(unhealthy.json, { code: 'KH_UNAVAILABLE' })
  await restore()
  while (!keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal((await request('GET', '/health')).status, 200, 'recovered')
})
