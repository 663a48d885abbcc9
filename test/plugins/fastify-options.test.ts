/**
 * Registration: every bad option is refused with `KH_INVALID_OPTIONS` and a message naming it; the
 * caller's options object is never mutated.
 */
import t from 'tap'
import Fastify from 'fastify'
import { capabilities, type FastifyKeyholeOptions } from '../../plugins/fastify.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { baseOptions, bearer, buildApp, mint } from './helpers/app.ts'

const pool = { query: async () => ({ rows: [] }), connect: async () => ({}) }
const policies = definePolicies({})

async function register(options: unknown) {
  const app = Fastify()
  try {
    await app.register(capabilities, options as FastifyKeyholeOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('bad options are refused at registration, naming the option', async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown option', { ...baseOptions, publik: ['/x'] }, /publik/],
    ['public not a list', { ...baseOptions, public: '/health' }, /public/],
    ['a public route without a slash', { ...baseOptions, public: ['health'] }, /public\.0/],
    ['a public route with a query', { ...baseOptions, public: ['/a?b'] }, /public\.0/],
    ['logDenials not a boolean', { ...baseOptions, logDenials: 'yes' }, /logDenials/],
    ['checks without database', { ...baseOptions, checks: true }, /checks/],
    ['monitor without database', { ...baseOptions, checks: false, monitor: {} }, /monitor/],
    [
      'database.pool not a pool',
      { ...baseOptions, database: { pool: {}, policies } },
      /database\.pool/,
    ],
    [
      'database.policies not from definePolicies',
      { ...baseOptions, database: { pool, policies: { tables: {}, roles: [] } } },
      /database\.policies/,
    ],
    [
      "mode 'rls' without a signing key",
      { ...baseOptions, database: { pool, policies, mode: 'rls' } },
      /database\.signingKey/,
    ],
    [
      'an unknown database option',
      { ...baseOptions, database: { pool, policies, sessions: 1 } },
      /database\.sessions/,
    ],
    [
      'monitor.intervalMs negative',
      { ...baseOptions, database: { pool, policies }, monitor: { intervalMs: -1 } },
      /monitor\.intervalMs/,
    ],
    [
      'monitor.onFinding unknown',
      { ...baseOptions, database: { pool, policies }, monitor: { onFinding: 'exit' } },
      /monitor\.onFinding/,
    ],
    [
      'a bad checks option',
      { ...baseOptions, database: { pool, policies }, checks: { migrationRole: 42 } },
      /migrationRole/,
    ],
    [
      'monitor neither false nor an object',
      { ...baseOptions, database: { pool, policies }, monitor: 'yes' },
      /monitor/,
    ],
    [
      'an unknown monitor option',
      { ...baseOptions, database: { pool, policies }, monitor: { every: 1 } },
      /monitor\.every/,
    ],
    ['no algorithms', { ...baseOptions, algorithms: undefined }, /algorithms/],
    ['alg none', { ...baseOptions, algorithms: ['none'] }, /algorithms/],
    ['a short secret', { ...baseOptions, secret: 'short' }, /secret/],
    ['a bad capability option', { ...baseOptions, capability: { roles: [] } }, /capability\.roles/],
  ]
  for (const [name, options, names] of cases) {
    await t.rejects(register(options), { code: 'KH_INVALID_OPTIONS', message: names }, name)
  }
})

t.test("the caller's options object is never mutated", async (t) => {
  const options = {
    ...baseOptions,
    algorithms: [...baseOptions.algorithms],
    public: ['/health'],
    capability: { roles: ['member', 'moderator', 'admin'] },
  }
  const before = JSON.stringify(options)
  const frozen = structuredClone(options)
  deepFreeze(frozen)
  const { app } = await buildApp(t, frozen, (app) => {
    app.get('/me', async (request) => request.capability.subject)
  })
  await buildApp(t, options)
  t.equal(JSON.stringify(options), before)
  const response = await app.inject({ method: 'GET', url: '/me', headers: bearer(await mint()) })
  t.equal(response.body, 'alice')
})

t.test('fastify.keyhole: realm, roles and health without a database', async (t) => {
  const { app } = await buildApp(t, { capability: { roles: ['reader', 'owner'] }, realm: 'api' })
  t.equal(app.keyhole.realm, 'api')
  t.same(app.keyhole.roles, ['reader', 'owner'])
  t.equal(app.keyhole.healthy, true)
  t.doesNotThrow(() => app.keyhole.assertHealthy())
})

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object') return
  Object.freeze(value)
  for (const inner of Object.values(value)) deepFreeze(inner)
}
