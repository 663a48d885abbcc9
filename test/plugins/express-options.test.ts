/**
 * Creating the middleware: `capabilities()` is synchronous and refuses every bad option at once
 * with `KH_INVALID_OPTIONS` naming it (the Fastify plugin's validation); the key import starts
 * there and its failure surfaces in `ready()` and in every request (500, generic), never as an
 * unhandled rejection; the caller's options object is never mutated.
 */
import t from 'tap'
import express from 'express'
import {
  capabilities,
  keyholeErrors,
  requireRole,
  type ExpressKeyholeOptions,
  type KeyholeLogger,
} from '../../plugins/express.ts'
import { stderrLogger } from '../../src/http/keyhole-logger.ts'
import { badAdapterOptions } from '../behaviour/helpers/bad-options.ts'
import {
  baseOptions,
  bearer,
  client,
  memoryLogger,
  mint,
  serve,
  startApp,
} from './helpers/express-app.ts'

const create = (options: unknown) => capabilities(options as ExpressKeyholeOptions)
/** Options that pass every check but the import: a PEM whose body is not a key. */
const unimportable = {
  secret: undefined,
  algorithms: ['RS256' as const],
  publicKey: '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----',
}

t.test('bad options throw when the middleware is created, naming the option', async (t) => {
  const logger = memoryLogger()
  const cases: [string, unknown, RegExp][] = [
    ...badAdapterOptions(baseOptions),
    ['not an object', null, /options/],
    ['logger not an object', { ...baseOptions, logger: 'stderr' }, /logger/],
    [
      'logger without fatal',
      { ...baseOptions, logger: { ...logger, fatal: undefined } },
      /logger\.fatal/,
    ],
    ['console as the logger', { ...baseOptions, logger: console }, /logger\.fatal/],
  ]
  for (const [name, options, names] of cases) {
    t.throws(() => create(options), { code: 'KH_INVALID_OPTIONS', message: names }, name)
  }
})

t.test('requireRole refuses a bad role or group resolver when it is created', async (t) => {
  for (const role of ['', 42, undefined]) {
    t.throws(() => requireRole(role as string), { code: 'KH_INVALID_OPTIONS' }, String(role))
  }
  t.throws(() => requireRole('member', { group: 'groupId' as never }), {
    code: 'KH_INVALID_OPTIONS',
    message: /requireRole\.group/,
  })
})

t.test(
  'creation is synchronous; the key import is awaited by ready() and by requests',
  async (t) => {
    const keyhole = create({
      ...baseOptions,
      capability: { roles: ['reader', 'owner'] },
      realm: 'api',
    })
    t.teardown(() => keyhole.close())
    t.equal(keyhole.realm, 'api', 'known before any await')
    t.same(keyhole.roles, ['reader', 'owner'])
    t.equal(keyhole.healthy, true, 'no database checks: serving at once')
    t.doesNotThrow(() => keyhole.assertHealthy())
    const app = express()
    app.use(keyhole)
    app.get('/me', (req, res) => void res.json(req.requireCapability().subject))
    const request = client((await serve(t, app)).base)
    // Sent before ready(): the request waits for the key import and is served.
    t.equal((await request('GET', '/me', bearer(await mint()))).json, 'alice')
    await t.resolves(keyhole.ready())
    await t.resolves(keyhole.ready(), 'ready() again is harmless')
  },
)

t.test('a request that arrives while the keys are still importing waits for them', async (t) => {
  const token = await mint()
  const keyhole = create(baseOptions)
  t.teardown(() => keyhole.close())
  // Called as Express would, in the same tick as the creation.
  const req = {
    method: 'GET',
    path: '/me',
    headers: { authorization: `Bearer ${token}` },
    rawHeaders: ['Authorization', `Bearer ${token}`],
    app: { get: () => undefined },
  } as unknown as express.Request
  let nexted: unknown = 'not called'
  await keyhole(req, {} as express.Response, (error?: unknown) => {
    nexted = error
  })
  t.equal(nexted, undefined)
  t.equal(req.requireCapability().subject, 'alice')
})

t.test(
  'a key that fails to import: ready() rejects, requests answer 500, nothing unhandled',
  async (t) => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    t.teardown(() => void process.off('unhandledRejection', onUnhandled))
    const { keyhole, request, logger } = await startApp(
      t,
      unimportable,
      (app) => app.get('/me', (_req, res) => void res.send('unreachable')),
      { ready: false },
    )
    await t.rejects(keyhole.ready(), { code: 'KH_INVALID_OPTIONS', message: /publicKey/ })
    await t.rejects(keyhole.ready(), { code: 'KH_INVALID_OPTIONS' }, 'and again: no stale success')
    const response = await request('GET', '/me', bearer(await mint()))
    t.equal(response.status, 500)
    t.same(response.json, {
      statusCode: 500,
      error: 'Internal Server Error',
      message: 'Invalid keyhole options',
      code: 'KH_INVALID_OPTIONS',
    })
    t.notMatch(response.text, /publicKey|PEM/, 'the detail stays in the log')
    t.match(logger.lines, [{ level: 'error', message: 'keyhole: request failed' }])
    await new Promise((resolve) => setImmediate(resolve))
    t.same(unhandled, [])
  },
)

t.test("the caller's options object is never mutated", async (t) => {
  const options = {
    ...baseOptions,
    algorithms: [...baseOptions.algorithms],
    public: ['/health'],
    capability: { roles: ['member', 'moderator', 'admin'] },
  }
  const before = JSON.stringify(options)
  deepFreeze(options)
  const keyhole = create(options)
  t.teardown(() => keyhole.close())
  await keyhole.ready()
  t.equal(JSON.stringify(options), before)
})

t.test('after close() every request answers 503', async (t) => {
  const { keyhole, request } = await startApp(t, {}, (app) => {
    app.get('/me', (req, res) => void res.json(req.requireCapability().subject))
  })
  const token = bearer(await mint())
  t.equal((await request('GET', '/me', token)).status, 200)
  await keyhole.close()
  t.equal(keyhole.healthy, false)
  t.throws(() => keyhole.assertHealthy(), { code: 'KH_UNAVAILABLE' })
  const response = await request('GET', '/me', token)
  t.equal(response.status, 503)
  t.equal(response.json.code, 'KH_UNAVAILABLE')
})

t.test('without a logger, failures go to stderr as one JSON line; info is dropped', async (t) => {
  const written: string[] = []
  const write = process.stderr.write
  process.stderr.write = ((chunk: string) => {
    written.push(chunk)
    return true
  }) as typeof process.stderr.write
  t.teardown(() => {
    process.stderr.write = write
  })
  const token = bearer(await mint())
  for (const broken of [false, true]) {
    const keyhole = create(broken ? { ...baseOptions, ...unimportable } : baseOptions)
    t.teardown(() => keyhole.close())
    const app = express()
    app.use(keyhole, keyholeErrors())
    const request = client((await serve(t, app)).base)
    // A denial (logged at info, dropped), then with the broken key a failure (at error).
    t.equal((await request('GET', '/x', broken ? token : {})).status, broken ? 500 : 401)
  }
  process.stderr.write = write
  t.equal(written.length, 1, 'the failure only')
  const line = JSON.parse(written[0] as string) as Record<string, unknown>
  t.match(line, {
    level: 'error',
    time: Number,
    msg: 'keyhole: request failed',
    err: { type: 'ConfigurationError', code: 'KH_INVALID_OPTIONS', message: /publicKey/ },
  })
  t.notOk('stack' in (line.err as object), 'no stack')
  t.notMatch(written[0], token.authorization.slice(7))
})

t.test('the stderr logger: one line per call, errors by name, code and message only', async (t) => {
  const lines: string[] = []
  const logger = stderrLogger((text) => lines.push(text))
  const plain = new Error('plain')
  Object.assign(plain, { code: 42, detail: 'Key (id)=(7) already exists' })
  logger.fatal({ codes: ['KH_DB_SUPERUSER'] }, 'findings')
  logger.warn({ err: plain }, 'odd')
  logger.info({ a: 1 }, 'dropped')
  logger.debug({ a: 1 }, 'dropped')
  t.equal(lines.length, 2)
  t.match(JSON.parse(lines[0] as string), {
    level: 'fatal',
    codes: ['KH_DB_SUPERUSER'],
    msg: 'findings',
  })
  t.same(JSON.parse(lines[1] as string).err, { type: 'Error', message: 'plain' }, 'no DETAIL')
  t.ok(lines.every((line) => line.endsWith('}\n') && !line.slice(0, -1).includes('\n')))
})

t.test('the logger is called as a method (pino keeps its state on `this`)', async (t) => {
  const seen: unknown[] = []
  const logger: KeyholeLogger = {
    fatal() {},
    error() {},
    warn() {},
    debug() {},
    info(this: unknown) {
      seen.push(this)
    },
  }
  const { request } = await startApp(t, { logger }, () => {})
  await request('GET', '/x')
  t.same(seen, [logger])
})

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object') return
  Object.freeze(value)
  for (const inner of Object.values(value)) deepFreeze(inner)
}
