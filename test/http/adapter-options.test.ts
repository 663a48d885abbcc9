/**
 * The adapter's own options, resolved: defaults, the checks derived from the policies, and a
 * message naming the option for each bad value. The Fastify tests cover the same through
 * `register`; this covers the rules themselves.
 */
import t from 'tap'
import {
  resolveAdapterOptions as resolveWith,
  type AdapterOptions,
} from '../../src/http/adapter-options.ts'
import { inGroup } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'

const pool = {
  query: async () => ({ rows: [] }),
  connect: async () => ({ query() {}, release() {} }),
}
const policies = definePolicies({
  notes: { read: inGroup('group_id', 'member'), delete: inGroup('group_id', 'moderator') },
  'app.posts': { insert: inGroup('group_id', 'member') },
})
const database = { pool, policies } as unknown as NonNullable<AdapterOptions['database']>
const guarded = { ...database, mode: 'guard' } as const
const uuidGroups = { groupIdType: 'uuid' } as const
const resolveAdapterOptions = (options: AdapterOptions) => resolveWith(options, uuidGroups)

t.test('defaults: nothing public, denials logged, no database', async (t) => {
  const resolved = resolveAdapterOptions({})
  t.same(resolved, {
    publicRoutes: [],
    logDenials: true,
    database: undefined,
    checks: undefined,
    monitor: undefined,
    onFinding: undefined,
    events: { allows: false },
  })
  t.ok(Object.isFrozen(resolved))
})

t.test(
  "a database: 'rls' with a key, 'guard' only when stated; checks and monitor on",
  async (t) => {
    const guard = resolveAdapterOptions({ database: guarded })
    t.match(guard.database, { mode: 'guard', prepared: true })
    t.match(guard.checks, { mode: 'guard' }, "the checks expect no RLS in 'guard' mode")
    t.match(guard.checks, {
      guardedTables: [
        { table: 'public.notes', operations: ['select', 'delete'] },
        { table: 'app.posts', operations: ['insert'] },
      ],
    })
    t.ok(guard.checks?.keyholeFunctions?.length, "keyhole's own functions are expected")
    t.equal(
      guard.checks?.policies,
      undefined,
      'guard mode judges the installed policies by their text',
    )
    t.same(guard.monitor, { intervalMs: 60_000, onFinding: '503' })

    const rls = resolveAdapterOptions({
      database: { ...database, signingKey: 'k'.repeat(43), prepared: false },
      checks: { migrationRole: 'app_migrator' },
      monitor: { intervalMs: 5000, onFinding: 'close' },
    })
    t.match(rls.database, { mode: 'rls', prepared: false })
    t.match(rls.checks, { migrationRole: 'app_migrator', groupIdType: 'uuid', mode: 'rls' })
    t.equal(rls.checks?.policies, policies, "rls mode expects exactly the policies' generated SQL")
    t.same(rls.monitor, { intervalMs: 5000, onFinding: 'close' })

    const keyed = { ...database, signingKey: 'k'.repeat(43) }
    t.match(resolveAdapterOptions({ database: { ...keyed, mode: 'rls' } }).database, {
      mode: 'rls',
    })
    t.equal(resolveAdapterOptions({ database: keyed, monitor: false }).monitor, undefined)
    const unchecked = resolveAdapterOptions({ database: keyed, checks: false })
    t.equal(unchecked.checks, undefined)
    t.equal(unchecked.monitor, undefined)
  },
)

t.test(
  "rls checks compare the policies in the capability's group-ID type, unless told not to",
  async (t) => {
    const rls = { database: { ...database, signingKey: 'k'.repeat(43) } }
    t.match(resolveWith(rls, { groupIdType: 'bigint' }).checks, { policies, groupIdType: 'bigint' })
    const textOnly = resolveWith({ ...rls, checks: { policies: undefined } }, uuidGroups)
    t.equal(textOnly.checks?.policies, undefined)
  },
)

t.test('bad options name the option', async (t) => {
  const rows: [string, unknown, RegExp][] = [
    ['unknown key', { publik: [] }, /Invalid option publik:/],
    ['public not a list', { public: '/x' }, /Invalid option public:/],
    ['public entry without /', { public: ['x'] }, /Invalid option public\.0:/],
    ['public entry with a query', { public: ['/x?y'] }, /Invalid option public\.0:/],
    ['logDenials', { logDenials: 1 }, /Invalid option logDenials:/],
    ['database.pool', { database: { pool: {}, policies } }, /Invalid option database\.pool:/],
    ...(
      [
        ['a connection string', 'postgres://app@db/app'],
        ['without connect', { query: pool.query }],
        ['without query', { connect: pool.connect }],
        ['the Pool class, not a pool', class Pool {}],
      ] as const
    ).map(([name, bad]): [string, unknown, RegExp] => [
      `database.pool: ${name}`,
      { database: { pool: bad, policies } },
      /Invalid option database\.pool: must be a node-postgres pg\.Pool/,
    ]),
    ['database.policies', { database: { pool, policies: {} } }, /database\.policies:/],
    ['database.mode', { database: { ...database, mode: 'off' } }, /database\.mode:/],
    ['database.extra', { database: { ...database, extra: 1 } }, /database\.extra:/],
    ['rls without key', { database: { ...database, mode: 'rls' } }, /database\.signingKey:/],
    [
      'rls with an undefined key (an unset environment variable)',
      { database: { ...database, mode: 'rls', signingKey: undefined } },
      /database\.signingKey: required when database\.mode is 'rls'/,
    ],
    [
      'neither a key nor a mode: no silent guard mode',
      { database },
      /Invalid option database\.mode: required without database\.signingKey/,
    ],
    [
      'an undefined key and no mode',
      { database: { ...database, signingKey: undefined } },
      /Invalid option database\.mode:/,
    ],
    [
      'a key in guard mode',
      { database: { ...database, mode: 'guard', signingKey: 'k'.repeat(43) } },
      /Invalid option database\.signingKey: not used in 'guard' mode/,
    ],
    [
      'the checks mode, which follows the database mode',
      { database: guarded, checks: { mode: 'rls' } },
      /Invalid option checks\.mode:/,
    ],
    ['checks without database', { checks: true }, /Invalid option checks:/],
    [
      'checks option',
      { database: guarded, checks: { migrationRole: 7 } },
      /checkDatabase\.migrationRole/,
    ],
    [
      'monitor without checks',
      { database: guarded, checks: false, monitor: {} },
      /option monitor:/,
    ],
    [
      'monitor.intervalMs',
      { database: guarded, monitor: { intervalMs: -1 } },
      /monitor\.intervalMs:/,
    ],
    [
      'monitor.onFinding',
      { database: guarded, monitor: { onFinding: 'exit' } },
      /monitor\.onFinding:/,
    ],
    [
      'monitor unknown key',
      { database: guarded, monitor: { interval: 5 } },
      /option monitor\.interval:/,
    ],
    [
      'monitor not an object',
      { database: guarded, monitor: 'often' },
      /option monitor: Invalid input/,
    ],
    ['checks not an object', { database: guarded, checks: 'yes' }, /option checks:/],
  ]
  for (const [name, options, message] of rows) {
    t.throws(
      () => resolveAdapterOptions(options as AdapterOptions),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
})

t.test("the caller's object is not mutated", async (t) => {
  const options = Object.freeze({
    public: Object.freeze(['/health']),
    database: Object.freeze({ ...guarded }),
    monitor: Object.freeze({ intervalMs: 1000 }),
  })
  const before = JSON.stringify(options)
  resolveAdapterOptions(options as AdapterOptions)
  t.equal(JSON.stringify(options), before)
})
