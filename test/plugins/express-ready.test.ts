/**
 * Start-up checks and the monitor on Express: with the database checks (the default with
 * `database`) every request answers 503 until `ready()` resolved, so forgetting it never serves
 * an unchecked database; `ready()` refuses an insecure database with the report (and may be
 * retried once it is fixed); the monitor answers 503 while it has a finding and, with
 * `onFinding: 'close'`, closes the server given to `ready()`.
 */
import { once } from 'node:events'
import t from 'tap'
import type { Express } from 'express'
import type pg from 'pg'
import type { ExpressKeyholeOptions } from '../../plugins/express.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import { bearer, mint, startApp } from './helpers/express-app.ts'

const k = await createKeyholeDatabase(t)
const alice = bearer(
  await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] }),
)

function runtimePool(max = 2): pg.Pool {
  const pool = k.runtimePool(max)
  pool.on('error', () => {})
  return pool
}

function database(pool: pg.Pool = runtimePool()): Partial<ExpressKeyholeOptions> {
  return {
    database: { pool, policies: notesPolicies, signingKey: k.signingKey },
    checks: { migrationRole: k.migrator.name },
    public: ['/health'],
  }
}

function routes(app: Express, keyhole: { assertHealthy(): void }) {
  app.get('/health', (_req, res) => {
    keyhole.assertHealthy()
    res.json('ok')
  })
  app.get('/notes', async (req, res) => void res.json((await req.db.select('notes')).length))
}

const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10))
}

t.test('before ready(): 503 to every request, public ones too', async (t) => {
  const { keyhole, request, server } = await startApp(t, database(), routes, { ready: false })
  t.equal(keyhole.healthy, false)
  for (const [path, headers] of [
    ['/notes', alice],
    ['/health', {}],
    ['/nowhere', {}],
  ] as const) {
    const response = await request('GET', path, headers)
    t.equal(response.status, 503, path)
    t.same(response.json, {
      statusCode: 503,
      error: 'Service Unavailable',
      message: 'Service unavailable',
      code: 'KH_UNAVAILABLE',
    })
  }
  await keyhole.ready({ server })
  t.equal(keyhole.healthy, true)
  t.equal((await request('GET', '/notes', alice)).json, 1)
  t.equal((await request('GET', '/health')).json, 'ok')
})

t.test('ready() refuses an insecure database with the report', async (t) => {
  // The superuser pool: a superuser bypasses every policy.
  const { keyhole, request } = await startApp(t, database(k.db.pool), routes, { ready: false })
  await t.rejects(keyhole.ready(), {
    code: 'KH_INSECURE_DATABASE',
    message: /KH_DB_SUPERUSER/,
    findings: [{ code: 'KH_DB_SUPERUSER' }],
  })
  t.equal((await request('GET', '/notes', alice)).status, 503, 'still refusing')
})

t.test('a refused ready() can be retried once the database is fixed', async (t) => {
  const { keyhole, request } = await startApp(t, { ...database(), monitor: false }, routes, {
    ready: false,
  })
  await k.db.pool.query('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY')
  t.teardown(() => k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY'))
  await t.rejects(keyhole.ready(), {
    code: 'KH_INSECURE_DATABASE',
    message: /KH_DB_RLS_NOT_FORCED/,
  })
  await k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY')
  await t.resolves(keyhole.ready())
  t.equal((await request('GET', '/notes', alice)).status, 200)
})

t.test('the monitor: 503 KH_UNAVAILABLE while it has a finding, then serving again', async (t) => {
  const { keyhole, request, logger } = await startApp(
    t,
    { ...database(), monitor: { intervalMs: 20 } },
    routes,
  )
  t.equal((await request('GET', '/notes', alice)).status, 200)
  await k.db.pool.query('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY')
  await until(() => !keyhole.healthy)
  for (const [path, headers] of [
    ['/notes', alice],
    ['/health', {}],
  ] as const) {
    const response = await request('GET', path, headers)
    t.equal(response.status, 503, path)
    t.equal(response.json.code, 'KH_UNAVAILABLE')
  }
  t.throws(() => keyhole.assertHealthy(), { code: 'KH_UNAVAILABLE' })
  t.match(logger.lines, [{ level: 'fatal', details: { codes: ['KH_DB_RLS_NOT_FORCED'] } }])
  await k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY')
  await until(() => keyhole.healthy)
  t.equal((await request('GET', '/notes', alice)).status, 200)
})

t.test("the monitor in 'close' mode closes the server given to ready(), and keyhole", async (t) => {
  const { server, keyhole } = await startApp(
    t,
    { ...database(), monitor: { intervalMs: 20, onFinding: 'close' } },
    routes,
  )
  const closed = once(server, 'close')
  await k.db.pool.query('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY')
  t.teardown(() => k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY'))
  await closed
  t.equal(server.listening, false)
  await k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY')
  t.equal(keyhole.healthy, false, 'for good: a fixed database does not reopen it')
  await t.rejects(keyhole.ready(), { code: 'KH_UNAVAILABLE' })
})

t.test("'close' mode without a server to close: ready() refuses", async (t) => {
  const { keyhole } = await startApp(
    t,
    { ...database(), monitor: { onFinding: 'close' } },
    routes,
    { ready: false },
  )
  await t.rejects(keyhole.ready(), {
    code: 'KH_INVALID_OPTIONS',
    message: /monitor\.onFinding.*ready\(\{ server \}\)/,
  })
})

t.test('checks: false serves at once, without ready()', async (t) => {
  const { request } = await startApp(t, { ...database(), checks: false }, routes, { ready: false })
  t.equal((await request('GET', '/notes', alice)).status, 200)
})

t.test('close() stops the monitor, even one a ready() in flight was starting', async (t) => {
  const pool = runtimePool()
  // The checks run on a new connection of the pool's Client class per run: count those.
  let queries = 0
  // A subclass, so that it is still node-postgres's client (keyhole refuses any other in 'rls' mode).
  const counted = pool as unknown as { Client: typeof pg.Client }
  counted.Client = class CountedClient extends counted.Client {
    constructor(options: object) {
      super(options)
      queries++
    }
  }
  const { keyhole } = await startApp(t, { ...database(pool), monitor: { intervalMs: 5 } }, routes, {
    ready: false,
  })
  const starting = keyhole.ready()
  await keyhole.close()
  await t.resolves(starting, 'the checks it started ran to the end')
  const after = queries
  t.ok(after > 0)
  // Many monitor intervals later, nothing more reached the database.
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(queries, after)
  await t.rejects(keyhole.ready(), { code: 'KH_UNAVAILABLE', message: /closed/ })
})
