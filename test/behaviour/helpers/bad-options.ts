/**
 * The options both adapters refuse with `KH_INVALID_OPTIONS`, each with what the message must
 * name: the Fastify plugin at registration, the Express middleware when it is created. One table,
 * so the two validate the same way.
 */
import { definePolicies } from '../../../src/sql/policies.ts'

const pool = { query: async () => ({ rows: [] }), connect: async () => ({}) }
const policies = definePolicies({})

/**
 * A pg.Pool over pg-native's client (`pg.native.Pool`, whose `Client` is pg/lib/native/client.js):
 * its prototype has query, connect and end, but none of the JavaScript client's protocol handlers.
 * pg-native (libpq, a compiler) is not installed here, so the class is made in its shape.
 */
export function nativePool(): object {
  function Client() {}
  for (const method of ['connect', 'query', 'end', 'cancel', '_pulseQueryQueue']) {
    ;(Client.prototype as Record<string, unknown>)[method] = () => {}
  }
  return { Client, options: { Client }, query: pool.query, connect: pool.connect }
}

/** `[name, options, what the message names]`, from valid `base` token options. */
export function badAdapterOptions(base: object): [string, Record<string, unknown>, RegExp][] {
  const database = { pool, policies, mode: 'guard' }
  return [
    ['an unknown option', { ...base, publik: ['/x'] }, /publik/],
    ['public not a list', { ...base, public: '/health' }, /public/],
    ['a public route without a slash', { ...base, public: ['health'] }, /public\.0/],
    ['a public route with a query', { ...base, public: ['/a?b'] }, /public\.0/],
    ['logDenials not a boolean', { ...base, logDenials: 'yes' }, /logDenials/],
    ['checks without database', { ...base, checks: true }, /checks/],
    ['monitor without database', { ...base, checks: false, monitor: {} }, /monitor/],
    ['database.pool not a pool', { ...base, database: { pool: {}, policies } }, /database\.pool/],
    [
      'database.pool a connection string',
      { ...base, database: { pool: 'postgres://app@db/app', policies } },
      /database\.pool: must be a node-postgres pg\.Pool/,
    ],
    [
      'database.pool without connect',
      { ...base, database: { pool: { query() {} }, policies } },
      /database\.pool: must be a node-postgres pg\.Pool/,
    ],
    [
      'database.policies not from definePolicies',
      { ...base, database: { pool, policies: { tables: {}, roles: [] } } },
      /database\.policies/,
    ],
    [
      "a pg.native pool in 'rls' mode",
      { ...base, database: { pool: nativePool(), policies, signingKey: 'k'.repeat(43) } },
      /^Invalid option database\.pool: 'rls' mode pipelines .* is not node-postgres's JavaScript Client \(pg\.native, or another driver\): give a pg\.Pool/,
    ],
    [
      "mode 'rls' without a signing key",
      { ...base, database: { ...database, mode: 'rls' } },
      /database\.signingKey/,
    ],
    [
      'a database with neither a signing key nor a mode (no silent guard mode)',
      { ...base, database: { pool, policies } },
      /database\.mode/,
    ],
    [
      'a signing key in guard mode',
      { ...base, database: { ...database, signingKey: 'k'.repeat(43) } },
      /database\.signingKey/,
    ],
    [
      'an unknown database option',
      { ...base, database: { ...database, sessions: 1 } },
      /database\.sessions/,
    ],
    [
      'monitor.intervalMs negative',
      { ...base, database, monitor: { intervalMs: -1 } },
      /monitor\.intervalMs/,
    ],
    [
      'monitor.onFinding unknown',
      { ...base, database, monitor: { onFinding: 'exit' } },
      /monitor\.onFinding/,
    ],
    ['a bad checks option', { ...base, database, checks: { migrationRole: 42 } }, /migrationRole/],
    ['monitor neither false nor an object', { ...base, database, monitor: 'yes' }, /monitor/],
    ['an unknown monitor option', { ...base, database, monitor: { every: 1 } }, /monitor\.every/],
    ['no algorithms', { ...base, algorithms: undefined }, /algorithms/],
    ['alg none', { ...base, algorithms: ['none'] }, /algorithms/],
    ['a short secret', { ...base, secret: 'short' }, /secret/],
    ['two key sources', { ...base, jwksUrl: 'https://id.example/jwks' }, /exactly one/],
    ['a bad capability option', { ...base, capability: { roles: [] } }, /capability\.roles/],
  ]
}
