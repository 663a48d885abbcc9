/**
 * Discovery at the adapters' start-up, and the denial reasons a developer reads while configuring
 * an identity provider. Fastify: `register`/`ready()` rejects with KH_DISCOVERY_FAILED. Express:
 * `ready()`, which the app awaits before `listen`, rejects, and a request that arrives anyway
 * answers 500 with the generic message. A refused token's log line says which check failed
 * (`typ`, `iss` with the trailing-slash hint, `aud`, the lifetime bound, `alg`), never a claim's
 * value or the token, and the client gets only the code and the catalogue's description.
 */
import t from 'tap'
import { errorCatalogue } from '../../src/errors.ts'
import { startIssuerServer } from '../helpers/issuer-server.ts'
import { claims, keys, sign } from '../helpers/tokens.ts'
import { buildApp } from './helpers/app.ts'
import { startApp } from './helpers/express-app.ts'

const server = await startIssuerServer()
t.teardown(() => server.close())
const issuer = server.origin
const audience = 'forum-api'
const key = await keys('ES256', 'idp-1')
const discovery = { issuer, jwks_uri: `${issuer}/jwks.json` }
const serve = (document: unknown) => {
  server.routes = {
    '/.well-known/openid-configuration': { body: document },
    '/jwks.json': { body: { keys: [key.publicJwk] } },
  }
}
const options = {
  secret: undefined,
  discovery: true,
  issuer,
  audience,
  algorithms: ['ES256' as const],
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const mint = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  sign(claims({ iss: issuer, aud: audience, ...extra }), key.privateKey, {
    alg: 'ES256',
    kid: 'idp-1',
    typ: 'at+jwt',
    ...header,
  })

/** Each refusal: the token, the reason the log must carry, and claim values it must not. */
const refusals = async (): Promise<[string, string, RegExp, string[]][]> => [
  ['an ID token (typ JWT)', await mint({}, { typ: 'JWT' }), /^typ: the header is not at\+jwt/, []],
  [
    'the issuer with a trailing slash',
    await mint({ iss: `${issuer}/` }),
    /^iss: not the configured issuer; they differ only by a trailing "\/"$/,
    [`${issuer}/`],
  ],
  [
    'another issuer',
    await mint({ iss: 'https://evil.example' }),
    /^iss: not the configured issuer$/,
    ['evil.example'],
  ],
  [
    'another audience',
    await mint({ aud: 'billing-api' }),
    /^aud: does not contain the configured audience$/,
    ['billing-api'],
  ],
  [
    'ten years long',
    await mint({ exp: Math.floor(Date.now() / 1000) + 315_360_000 }),
    /^exp - iat: longer than maxTokenLifetime$/,
    [],
  ],
  [
    'alg HS256',
    `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.e30.c2ln`,
    /^alg: not in algorithms$/,
    [],
  ],
]

t.test('Fastify: a wrong issuer URL fails register/ready()', async (t) => {
  serve({ ...discovery, issuer: `${issuer}/` })
  await t.rejects(buildApp(t, options), {
    code: 'KH_DISCOVERY_FAILED',
    message: /differ only by a trailing "\/"/,
  })
  serve({})
  await t.rejects(buildApp(t, options), { code: 'KH_DISCOVERY_FAILED', message: /no issuer/ })
})

t.test('Fastify: denial reasons reach the log, not the client', async (t) => {
  serve(discovery)
  const { app, logLines, logText } = await buildApp(t, options, (app) => {
    app.get('/me', async (request) => ({ subject: request.capability?.subject }))
  })
  const ok = await app.inject({ method: 'GET', url: '/me', headers: bearer(await mint()) })
  t.same(ok.json(), { subject: 'user-1' })
  for (const [name, token, reason, values] of await refusals()) {
    const response = await app.inject({ method: 'GET', url: '/me', headers: bearer(token) })
    t.equal(response.statusCode, 401, name)
    const code = response.json().code as keyof typeof errorCatalogue
    t.same(
      response.json(),
      { statusCode: 401, error: 'Unauthorized', message: errorCatalogue[code].message, code },
      `${name}: the body is the catalogue's`,
    )
    t.notMatch(response.headers['www-authenticate'], reason, `${name}: not in the challenge`)
    const line = logLines().findLast((entry) => entry.msg === 'keyhole: request refused') as {
      level: number
      keyhole: { reason: string }
    }
    t.equal(line.level, 30, `${name}: at info`)
    t.match(line.keyhole.reason, reason, `${name}: the reason`)
    for (const value of values) t.notOk(logText().includes(value), `${name}: no ${value} logged`)
    t.notOk(logText().includes(token.split('.')[1] as string), `${name}: no token logged`)
  }
})

t.test('Express: ready() rejects on a wrong issuer; requests answer 500', async (t) => {
  serve({ issuer: 'https://elsewhere.example', jwks_uri: discovery.jwks_uri })
  const { keyhole, request, logger } = await startApp(
    t,
    options,
    (app) => app.get('/me', (req, res) => void res.json(req.capability?.subject)),
    { ready: false },
  )
  await t.rejects(keyhole.ready(), {
    code: 'KH_DISCOVERY_FAILED',
    message: /names the issuer "https:\/\/elsewhere.example"/,
  })
  const response = await request('GET', '/me', bearer(await mint()))
  t.equal(response.status, 500)
  t.same(response.json, {
    statusCode: 500,
    error: 'Internal Server Error',
    message: errorCatalogue.KH_DISCOVERY_FAILED.message,
    code: 'KH_DISCOVERY_FAILED',
  })
  t.ok(
    logger.lines.some((line) => line.level === 'error'),
    'the details go to the log at error',
  )
})

t.test('Express: denial reasons reach the logger, not the client', async (t) => {
  serve(discovery)
  const { request, logger } = await startApp(t, options, (app) =>
    app.get('/me', (req, res) => void res.json(req.capability?.subject)),
  )
  t.equal((await request('GET', '/me', bearer(await mint()))).json, 'user-1')
  for (const [name, token, reason] of await refusals()) {
    const response = await request('GET', '/me', bearer(token))
    t.equal(response.status, 401, name)
    t.notMatch(response.text, reason, `${name}: not in the body`)
    const line = logger.lines.findLast((entry) => entry.message === 'keyhole: request refused')
    t.match(line, { level: 'info', details: { keyhole: { reason } } }, name)
  }
})
