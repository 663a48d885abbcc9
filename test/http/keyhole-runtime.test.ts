/**
 * The runtime both adapters wire into their hooks, framework-free: its options refused at
 * creation, a raw request's headers authenticated into a capability, denials logged once, the
 * health state around `ready()` (the start-up checks and the monitor, on real PostgreSQL) and
 * `close()`, the role check behind `requireRole`, and what it exposes (nothing of its options).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import type pg from 'pg'
import { channelNames, type DecisionEvent } from '../../src/events.ts'
import {
  ConfigurationError,
  Forbidden,
  InsufficientScope,
  ServiceUnavailable,
  TokenError,
} from '../../src/errors.ts'
import {
  answerError,
  createKeyholeRuntime,
  exposeState,
  roleCheck,
  runtimeOf,
  scopeCheck,
  type KeyholeRuntimeOptions,
  type RuntimeLogger,
} from '../../src/http/keyhole-runtime.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import { audience, claims, group, issuer, secret, sign } from '../helpers/tokens.ts'

interface Line {
  readonly level: string
  readonly details: Record<string, any>
  readonly message: string
}

function memoryLogger(): RuntimeLogger & { readonly lines: Line[] } {
  const lines: Line[] = []
  const at = (level: string) => (details: object, message: string) =>
    void lines.push({ level, details: details as Record<string, any>, message })
  return {
    lines,
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
  }
}

const base = { secret, algorithms: ['HS256'], issuer, audience } satisfies KeyholeRuntimeOptions

/** A raw request (Node's `IncomingMessage` as far as keyhole reads it) with these headers. */
function raw(headers: Record<string, string> = {}, repeated: string[] = []) {
  const rawHeaders = Object.entries(headers).flat()
  for (const value of repeated) rawHeaders.push('Authorization', value)
  return { headers, rawHeaders }
}

const bearer = async (extra: Record<string, unknown> = {}) =>
  raw({ authorization: `Bearer ${await sign(claims(extra))}` })

const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10))
}

t.test('bad options are refused at creation, naming the option', async (t) => {
  const logger = memoryLogger()
  for (const [name, options, message] of [
    ['not an object', null, /must be an object/],
    ['a token option', { ...base, issuer: 42 }, /issuer/],
    ['no key source', { algorithms: ['HS256'], issuer, audience }, /exactly one key source/],
    ['a short secret', { ...base, secret: 'short' }, /secret: HS256 needs a secret/],
    ['a capability option', { ...base, capability: { roles: [] } }, /capability/],
    ['an adapter option', { ...base, public: ['health'] }, /Invalid option public/],
    ['checks without a database', { ...base, checks: true }, /checks: needs the database/],
  ] as const) {
    t.throws(
      () => createKeyholeRuntime(options as unknown as KeyholeRuntimeOptions, logger),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
})

t.test('a key that does not import: imported() and ready() reject, never unhandled', async (t) => {
  const runtime = createKeyholeRuntime(
    { algorithms: ['ES256'], publicKey: 'not a PEM', issuer, audience },
    memoryLogger(),
  )
  await t.rejects(runtime.imported(), { code: 'KH_INVALID_OPTIONS' })
  await t.rejects(runtime.ready(undefined), { code: 'KH_INVALID_OPTIONS' })
  await t.rejects(runtime.authenticate(await bearer(), memoryLogger(), '/x'), {
    code: 'KH_INVALID_OPTIONS',
  })
})

t.test('authenticate: a raw request to a capability, refusals thrown with the realm', async (t) => {
  const runtime = createKeyholeRuntime({ ...base, realm: 'forum' }, memoryLogger())
  const log = memoryLogger()
  const capability = await runtime.authenticate(await bearer(), log, '/notes')
  t.equal(capability.subject, 'user-1')
  t.ok(capability.has('member', group))
  t.same(log.lines, [], 'nothing logged for a good token')

  const missing = await t.rejects(runtime.authenticate(raw(), log, '/notes'), TokenError)
  t.match(missing, { code: 'KH_TOKEN_MISSING', statusCode: 401, realm: 'forum' })
  const token = `Bearer ${await sign(claims())}`
  await t.rejects(runtime.authenticate(raw({ authorization: token }, [token]), log, '/notes'), {
    code: 'KH_TOKEN_AMBIGUOUS',
  })
  t.same(
    log.lines.map((line) => [line.level, line.details.keyhole]),
    [
      ['info', { code: 'KH_TOKEN_MISSING', route: '/notes', subject: null }],
      ['info', { code: 'KH_TOKEN_AMBIGUOUS', route: '/notes', subject: null }],
    ],
    'each denial logged once, at info, with its route',
  )
})

t.test('authenticate: the cookie, when configured', async (t) => {
  const runtime = createKeyholeRuntime({ ...base, cookie: 'session' }, memoryLogger())
  const token = await sign(claims())
  const capability = await runtime.authenticate(
    raw({ cookie: `session=${token}` }),
    memoryLogger(),
    undefined,
  )
  t.equal(capability.subject, 'user-1')
})

t.test('permissions with unknown roles: counted at debug', async (t) => {
  const runtime = createKeyholeRuntime(base, memoryLogger())
  const log = memoryLogger()
  const extra = {
    permissions: [
      { group, role: 'member' },
      { group, role: 'owner' },
    ],
  }
  await runtime.authenticate(await bearer(extra), log, '/notes')
  t.same(log.lines, [
    {
      level: 'debug',
      details: { keyhole: { ignored: 1 } },
      message: 'keyhole: permissions with unknown roles',
    },
  ])
})

t.test('logDenials: false logs no denial', async (t) => {
  const runtime = createKeyholeRuntime({ ...base, logDenials: false }, memoryLogger())
  const log = memoryLogger()
  await t.rejects(runtime.authenticate(raw(), log, '/notes'), { code: 'KH_TOKEN_MISSING' })
  runtime.report(new Forbidden(), { log, route: '/x', capability: null })
  t.same(log.lines, [])
})

t.test('invalidate(): a cached token is verified again, against the keys of now', async (t) => {
  const keys = new Map([['k1', new TextEncoder().encode(secret)]])
  const runtime = createKeyholeRuntime(
    {
      algorithms: ['HS256'],
      issuer,
      audience,
      getKey: (header) => keys.get(header.kid as string) as Uint8Array,
    },
    memoryLogger(),
  )
  const token = raw({
    authorization: `Bearer ${await sign(claims(), secret, { kid: 'k1' })}`,
  })
  await runtime.authenticate(token, memoryLogger(), '/x')
  keys.delete('k1')
  await t.resolves(runtime.authenticate(token, memoryLogger(), '/x'), 'cached')
  runtime.invalidate()
  await t.rejects(runtime.authenticate(token, memoryLogger(), '/x'), TokenError)
})

t.test('without a database: healthy at once; close() ends serving for good', async (t) => {
  const runtime = createKeyholeRuntime(base, memoryLogger())
  t.equal(runtime.healthy, true)
  t.doesNotThrow(() => runtime.assertHealthy())
  await t.resolves(runtime.ready(undefined))
  await runtime.close()
  t.equal(runtime.healthy, false)
  t.throws(() => runtime.assertHealthy(), ServiceUnavailable)
  await t.rejects(runtime.ready(undefined), {
    code: 'KH_UNAVAILABLE',
    message: 'keyhole was closed',
  })
})

t.test('requireCapability reads its this: the capability, or 401 with the realm', async (t) => {
  const runtime = createKeyholeRuntime({ ...base, realm: 'forum' }, memoryLogger())
  const capability = await runtime.authenticate(await bearer(), memoryLogger(), '/x')
  const request = { capability, requireCapability: runtime.requireCapability }
  t.equal(request.requireCapability(), capability)
  const anonymous = { capability: null, requireCapability: runtime.requireCapability }
  t.throws(() => anonymous.requireCapability(), { code: 'KH_TOKEN_MISSING', realm: 'forum' })
})

t.test('roleCheck: the decision behind requireRole, reported through the runtime', async (t) => {
  t.throws(() => roleCheck('', {}), { code: 'KH_INVALID_OPTIONS' })
  t.throws(() => roleCheck('member', { group: 'g' as never }), { code: 'KH_INVALID_OPTIONS' })

  const runtime = createKeyholeRuntime({ ...base, realm: 'forum' }, memoryLogger())
  const capability = await runtime.authenticate(await bearer(), memoryLogger(), '/x')
  const log = memoryLogger()
  const at = { log, route: '/groups/:id', capability }
  const inGroup = roleCheck('member', { group: (request: { id?: string }) => request.id })
  t.doesNotThrow(() => inGroup(runtime, { id: group }, at))
  t.throws(() => inGroup(runtime, {}, at), { code: 'KH_BAD_REQUEST', statusCode: 400 })
  t.throws(() => inGroup(runtime, { id: 'nope' }, at), { code: 'KH_BAD_REQUEST' })
  const moderator = roleCheck('moderator', {})
  t.throws(() => moderator(runtime, {}, at), { code: 'KH_FORBIDDEN', realm: 'forum' })
  t.throws(() => moderator(runtime, {}, { ...at, capability: null }), {
    code: 'KH_TOKEN_MISSING',
  })
  t.same(
    log.lines.map((line) => line.details.keyhole),
    [
      { code: 'KH_FORBIDDEN', route: '/groups/:id', subject: 'user-1' },
      { code: 'KH_TOKEN_MISSING', route: '/groups/:id', subject: null },
    ],
    '401 and 403 logged; 400 not',
  )
  t.throws(() => roleCheck('owner', {})(runtime, {}, at), {
    code: 'KH_INVALID_OPTIONS',
    message: /Unknown role "owner"/,
  })
  const known = roleCheck('member', {})
  t.doesNotThrow(() => known(runtime, {}, at))
  t.doesNotThrow(() => known(runtime, {}, at), 'a known role is remembered')

  const alone = memoryLogger()
  const error = t.throws(() =>
    moderator(undefined, {}, { log: alone, route: '/x', capability }),
  ) as Forbidden
  t.equal(error.realm, 'keyhole', 'without a runtime: the default realm')
  t.same(alone.lines, [], 'and nothing logged')
})

t.test('scopeCheck: the decision behind requireScope, reported through the runtime', async (t) => {
  t.throws(() => scopeCheck([]), { code: 'KH_INVALID_OPTIONS' })
  t.throws(() => scopeCheck(['a b']), { code: 'KH_INVALID_OPTIONS' })

  const runtime = createKeyholeRuntime({ ...base, realm: 'forum' }, memoryLogger())
  const capability = await runtime.authenticate(
    await bearer({ scope: 'forum:read' }),
    memoryLogger(),
    '/x',
  )
  const log = memoryLogger()
  const at = { log, route: '/threads', capability }
  t.doesNotThrow(() => scopeCheck(['forum:read'])(runtime, at))
  const write = scopeCheck(['forum:read', 'forum:write'])
  t.throws(() => write(runtime, at), {
    code: 'KH_INSUFFICIENT_SCOPE',
    realm: 'forum',
    scopes: ['forum:read', 'forum:write'],
  })
  t.throws(() => write(runtime, { ...at, capability: null }), { code: 'KH_TOKEN_MISSING' })
  t.same(
    log.lines.map((line) => line.details.keyhole),
    [
      { code: 'KH_INSUFFICIENT_SCOPE', route: '/threads', subject: 'user-1' },
      { code: 'KH_TOKEN_MISSING', route: '/threads', subject: null },
    ],
  )

  const alone = memoryLogger()
  const error = t.throws(() =>
    write(undefined, { log: alone, route: '/x', capability }),
  ) as InsufficientScope
  t.equal(error.realm, 'keyhole', 'without a runtime: the default realm')
  t.same(alone.lines, [], 'and nothing logged')
})

t.test('scopeCheck publishes its decisions as check "scope"', async (t) => {
  const runtime = createKeyholeRuntime({ ...base, events: { allows: true } }, memoryLogger())
  const capability = await runtime.authenticate(
    await bearer({ scope: 'forum:read' }),
    memoryLogger(),
    '/x',
  )
  const events: DecisionEvent[] = []
  const listen = (event: unknown) => void events.push(event as DecisionEvent)
  subscribe(channelNames.decision, listen)
  t.teardown(() => void unsubscribe(channelNames.decision, listen))
  const at = { log: memoryLogger(), route: '/threads', method: 'POST', capability }
  scopeCheck(['forum:read'])(runtime, at)
  t.throws(() => scopeCheck(['forum:write'])(runtime, at))
  t.match(events, [
    { outcome: 'allowed', check: 'scope', code: null, route: '/threads', subject: 'user-1' },
    { outcome: 'refused', check: 'scope', statusCode: 403, code: 'KH_INSUFFICIENT_SCOPE' },
  ])
})

t.test('exposeState: realm, roles, health and the methods; none of the options', async (t) => {
  const k = { signingKey: 'k'.repeat(43) }
  const runtime = createKeyholeRuntime(
    {
      ...base,
      database: { pool: { query() {}, connect() {} } as never, policies: notesPolicies, ...k },
      checks: false,
    },
    memoryLogger(),
  )
  const state = exposeState({}, runtime)
  t.same(Object.keys(state), ['realm', 'roles', 'healthy'])
  t.same(state.roles, ['member', 'moderator', 'admin'])
  t.equal(state.healthy, true)
  t.doesNotThrow(() => state.assertHealthy())
  t.doesNotThrow(() => state.invalidate())
  t.notMatch(JSON.stringify(state), k.signingKey)
  t.equal(runtimeOf(state), runtime)
  t.equal(runtimeOf({}), undefined)
  t.equal(runtimeOf(undefined), undefined)
  await runtime.close()
  t.throws(() => state.assertHealthy(), { code: 'KH_UNAVAILABLE' })
})

t.test('answerError: the response; a 5xx logged with its details, a denial reported', async (t) => {
  const runtime = createKeyholeRuntime(base, memoryLogger())
  const log = memoryLogger()
  const at = { log, route: '/x', capability: null }
  const failure = new ConfigurationError('KH_INVALID_OPTIONS', 'the secret detail')
  const response = answerError(runtime, failure, at)
  t.equal(response.statusCode, 500)
  t.equal(response.body.message, 'Invalid keyhole options')
  t.match(log.lines, [{ level: 'error', details: { err: failure }, message: /request failed/ }])
  const denied = answerError(undefined, new TokenError('KH_TOKEN_MISSING'), at)
  t.equal(denied.statusCode, 401)
  t.equal(log.lines.length, 1, 'without a runtime, nothing reported')
  answerError(runtime, new TokenError('KH_TOKEN_MISSING'), at)
  t.match(log.lines[1], { level: 'info', details: { keyhole: { code: 'KH_TOKEN_MISSING' } } })
})

t.test('with the database checks (real PostgreSQL)', async (t) => {
  const k = await createKeyholeDatabase(t)
  const pool = (): pg.Pool => {
    const p = k.runtimePool(2)
    p.on('error', () => {})
    return p
  }
  const options = (p: pg.Pool, extra: Partial<KeyholeRuntimeOptions> = {}) => ({
    ...base,
    database: { pool: p, policies: notesPolicies, signingKey: k.signingKey },
    checks: { migrationRole: k.migrator.name },
    ...extra,
  })

  t.test('not healthy until ready() resolved; then serving', async (t) => {
    const runtime = createKeyholeRuntime(options(pool(), { monitor: false }), memoryLogger())
    t.teardown(() => runtime.close())
    t.equal(runtime.healthy, false)
    t.throws(() => runtime.assertHealthy(), { code: 'KH_UNAVAILABLE' })
    const ready = runtime.ready(undefined)
    t.equal(runtime.ready(undefined), ready, 'one run at a time')
    await ready
    t.equal(runtime.healthy, true)
    t.ok(runtime.databases?.transactional, "'rls' mode: request transactions")
  })

  t.test('an insecure database: ready() rejects with the report, and may be retried', async (t) => {
    const runtime = createKeyholeRuntime(options(k.db.pool, { monitor: false }), memoryLogger())
    t.teardown(() => runtime.close())
    await t.rejects(runtime.ready(undefined), {
      code: 'KH_INSECURE_DATABASE',
      findings: [{ code: 'KH_DB_SUPERUSER' }],
    })
    t.equal(runtime.healthy, false)
    await t.rejects(runtime.ready(undefined), { code: 'KH_INSECURE_DATABASE' }, 'run again')
  })

  t.test("onFinding: 'close' needs something to close", async (t) => {
    const runtime = createKeyholeRuntime(
      options(pool(), { monitor: { onFinding: 'close' } }),
      memoryLogger(),
    )
    await t.rejects(runtime.ready(undefined), {
      code: 'KH_INVALID_OPTIONS',
      message: /'close' needs ready\(\{ server \}\)/,
    })
    await runtime.close()
  })

  t.test('the monitor: unhealthy on a finding, the close callback called', async (t) => {
    const logger = memoryLogger()
    const runtime = createKeyholeRuntime(
      options(pool(), { monitor: { intervalMs: 20, onFinding: 'close' } }),
      logger,
    )
    let closed = 0
    await runtime.ready(() => closed++)
    t.equal(runtime.healthy, true)
    await k.db.pool.query('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY')
    t.teardown(() => k.db.pool.query('ALTER TABLE notes FORCE ROW LEVEL SECURITY'))
    await until(() => closed > 0)
    t.equal(runtime.healthy, false)
    t.match(logger.lines, [{ level: 'fatal', details: { codes: ['KH_DB_RLS_NOT_FORCED'] } }])
    await runtime.close()
  })

  t.test("'rls' mode on a pool whose clients are not pg Clients: KH_INVALID_OPTIONS", async (t) => {
    const real = pool()
    // A pg-shaped pool over another driver: its client takes pg's submittable but has no pg
    // Connection to hand it (pg.native's client has none either).
    const foreign = {
      query: real.query.bind(real),
      async connect() {
        return {
          query(submittable: { submit(c: unknown): Error | null; handleError(e: unknown): void }) {
            const error = submittable.submit(undefined)
            if (error) submittable.handleError(error)
          },
          release() {},
        }
      },
    }
    const runtime = createKeyholeRuntime(
      options(foreign as unknown as pg.Pool, { checks: false }),
      memoryLogger(),
    )
    const capability = await runtime.authenticate(await bearer(), memoryLogger(), '/x')
    const db = runtime.databases?.handle({}, capability, 'statement')
    await t.rejects(db!.select('notes'), {
      code: 'KH_INVALID_OPTIONS',
      message: /Invalid option database\.pool: .*not node-postgres Clients: give a pg\.Pool/,
    })
    const held = runtime.databases?.handle({}, capability)
    await t.rejects(held!.select('notes'), { code: 'KH_INVALID_OPTIONS' })
  })

  t.test('close() during ready(): the monitor it starts is stopped too', async (t) => {
    const runtime = createKeyholeRuntime(
      options(pool(), { monitor: { intervalMs: 20 } }),
      memoryLogger(),
    )
    const ready = runtime.ready(undefined)
    await runtime.close()
    await ready
    t.equal(runtime.healthy, false)
  })
})
