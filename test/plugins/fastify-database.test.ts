/**
 * The `database` option on a real PostgreSQL prepared by keyhole's setup: `request.db` is the
 * policy-bound handle; in 'rls' mode a request's statements run in one transaction with the signed
 * capability, committed when the response succeeds and rolled back otherwise; the start-up checks
 * refuse an insecure database; the monitor answers 503 while it has a finding.
 */
import pg from 'pg'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { requireRole } from '../../plugins/fastify.ts'
import { BadRequest } from '../../src/errors.ts'
import { and, inGroup, isSubject } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { createKeyholeDatabase, type KeyholeDatabase } from '../db/helpers/keyhole.ts'
import { bearer, buildApp, mint } from './helpers/app.ts'

const policies = definePolicies({
  notes: {
    read: inGroup('group_id', 'member'),
    insert: and(inGroup('group_id', 'member'), isSubject('owner')),
    update: inGroup('group_id', 'moderator'),
    delete: inGroup('group_id', 'moderator'),
  },
})

function routes(app: FastifyInstance) {
  app.get('/notes', async (request) =>
    (await request.db.select('notes', {}, { orderBy: [['id', 'asc']] })).map((n) => n.body),
  )
  app.post<{ Body: { group: string; body: string; fail?: 'throw' | '400' } }>(
    '/notes',
    { preHandler: requireRole('member') },
    async (request, reply) => {
      const { group, body, fail } = request.body
      await request.db.insert('notes', {
        group_id: group,
        owner: request.requireCapability().subject,
        body,
      })
      if (fail === 'throw') throw new BadRequest()
      if (fail === '400') return reply.code(400).send({ refused: true })
      return reply.code(201).send({ ok: true })
    },
  )
  app.get('/open', { config: { keyhole: { public: true } } }, async (request) => {
    await request.db.select('notes')
    return 'unreachable'
  })
  app.get('/health', { config: { keyhole: { public: true } } }, async () => {
    app.keyhole.assertHealthy()
    return 'ok'
  })
}

/**
 * The runtime role's pool. The test database is dropped at teardown, which terminates the pool's
 * idle connections; pg reports that on the pool, where it is expected and ignored.
 */
function runtimePool(k: KeyholeDatabase, max = 2) {
  const pool = k.runtimePool(max)
  pool.on('error', () => {})
  return pool
}

/**
 * A superuser pool of the test database (it bypasses RLS), apart from the helper's own so that the
 * teardown's forced DROP DATABASE may terminate its connections without an unhandled error.
 */
function superuserPool(t: Test, k: KeyholeDatabase) {
  const pool = new pg.Pool({ connectionString: k.db.url, max: 2 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  return pool
}

async function count(k: KeyholeDatabase, body: string): Promise<number> {
  const { rows } = await k.db.pool.query('SELECT count(*)::int AS n FROM notes WHERE body = $1', [
    body,
  ])
  return (rows[0] as { n: number }).n
}

// One database for the file: every app and pool of a test is closed before it is dropped.
const k = await createKeyholeDatabase(t)

t.test("'rls' mode: one transaction per request, committed on success only", async (t) => {
  const pool = runtimePool(k, 2)
  const { app } = await buildApp(
    t,
    { database: { pool, policies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  const alice = await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] })
  const admin = await mint({ sub: 'root', permissions: [{ group: k.groupB, role: 'admin' }] })
  const read = await app.inject({ method: 'GET', url: '/notes', headers: bearer(alice) })
  t.same(read.json(), ['a'])
  t.same((await app.inject({ method: 'GET', url: '/notes', headers: bearer(admin) })).json(), [
    'a',
    'b',
  ])

  const post = (body: string, fail?: string, group = k.groupA) =>
    app.inject({
      method: 'POST',
      url: '/notes',
      headers: bearer(alice),
      payload: { group, body, fail },
    })
  t.equal((await post('kept')).statusCode, 201)
  t.equal(await count(k, 'kept'), 1)
  t.equal((await post('thrown', 'throw')).statusCode, 400)
  t.equal(await count(k, 'thrown'), 0, 'an error rolls back')
  t.equal((await post('refused', '400')).statusCode, 400)
  t.equal(await count(k, 'refused'), 0, 'a 4xx reply rolls back')
  const denied = await post('elsewhere', undefined, k.groupB)
  // Group B is invisible to alice: the denial answers exactly as a missing row would.
  t.equal(denied.statusCode, 404)
  t.same(denied.json(), {
    statusCode: 404,
    error: 'Not Found',
    message: 'Not found',
    code: 'KH_NOT_FOUND',
  })
  t.equal(await count(k, 'elsewhere'), 0)
  // Both pooled connections are back and clean: requests still work, with their own capability.
  for (let i = 0; i < 4; i++) {
    t.same((await app.inject({ method: 'GET', url: '/notes', headers: bearer(alice) })).json(), [
      'a',
      'kept',
    ])
  }
})

t.test("'guard' mode: statements on the pool, guarded by the statement", async (t) => {
  // The runtime role's RLS policies read a capability that 'guard' mode never sets: use the
  // superuser pool, which bypasses RLS, so what is seen is the statement guard's doing alone
  // (group A's rows: the seeded note and the one the 'rls' test kept; never group B's).
  const { app } = await buildApp(
    t,
    { database: { pool: superuserPool(t, k), policies, mode: 'guard' }, checks: false },
    routes,
  )
  const alice = await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] })
  t.same((await app.inject({ method: 'GET', url: '/notes', headers: bearer(alice) })).json(), [
    'a',
    'kept',
  ])
})

t.test('request.db on a public route answers 401 (no capability, no data)', async (t) => {
  const { app } = await buildApp(
    t,
    { database: { pool: runtimePool(k, 1), policies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  const response = await app.inject({ method: 'GET', url: '/open' })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'KH_TOKEN_MISSING')
})

t.test('the start-up checks refuse an insecure database with the report', async (t) => {
  // The superuser pool: every check fails on a superuser.
  await t.rejects(
    buildApp(
      t,
      { database: { pool: superuserPool(t, k), policies, mode: 'guard' }, monitor: false },
      routes,
    ),
    {
      code: 'KH_INSECURE_DATABASE',
      message: /KH_DB_SUPERUSER|superuser/i,
    },
  )
})

t.test("the monitor: 503 KH_UNAVAILABLE while it has a finding, in '503' mode", async (t) => {
  const pool = runtimePool(k, 2)
  const { app } = await buildApp(
    t,
    {
      database: { pool, policies, signingKey: k.signingKey },
      checks: { migrationRole: k.migrator.name },
      monitor: { intervalMs: 20 },
    },
    routes,
  )
  const alice = await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] })
  t.equal(app.keyhole.healthy, true)
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)

  await k.db.pool.query('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY')
  while (app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  for (const [url, headers] of [
    ['/notes', bearer(alice)],
    ['/notes', {}],
    ['/health', {}],
  ] as const) {
    const response = await app.inject({ method: 'GET', url, headers })
    t.equal(response.statusCode, 503, url)
    t.equal(response.json().code, 'KH_UNAVAILABLE')
  }
  t.throws(() => app.keyhole.assertHealthy(), { code: 'KH_UNAVAILABLE' })

  await k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY')
  while (!app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(
    (await app.inject({ method: 'GET', url: '/notes', headers: bearer(alice) })).statusCode,
    200,
  )
})

t.test("the monitor in 'close' mode closes the server on a finding", async (t) => {
  const pool = runtimePool(k, 2)
  let closed = false
  const { app } = await buildApp(
    t,
    {
      database: { pool, policies, signingKey: k.signingKey },
      checks: { migrationRole: k.migrator.name },
      monitor: { intervalMs: 20, onFinding: 'close' },
    },
    (app) => {
      routes(app)
      app.addHook('onClose', async () => {
        closed = true
      })
    },
  )
  t.ok(app)
  await k.db.pool.query('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY')
  while (!closed) await new Promise((resolve) => setTimeout(resolve, 10))
  t.pass('closed')
})
