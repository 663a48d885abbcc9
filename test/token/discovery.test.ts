/**
 * Discovery (`discovery: true`): the key set comes from the issuer's own metadata, read once at
 * start-up, and the RFC 9068 access-token profile (`typ: at+jwt`) is required by default. Every
 * way the document can be wrong fails start-up with KH_DISCOVERY_FAILED naming the fault; options
 * that cannot work fail registration with KH_INVALID_OPTIONS. Served by a real HTTP server on
 * loopback (plain http is allowed there, and only there).
 */
import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { discoverJwksUrl } from '../../src/token/discovery.ts'
import type { KeyholeOptions } from '../../src/options.ts'
import { startIssuerServer } from '../helpers/issuer-server.ts'
import { audience, claims, keys, sign } from '../helpers/tokens.ts'

const server = await startIssuerServer()
t.teardown(() => server.close())
const issuer = server.origin
const key = await keys('ES256', 'discovery-1')
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const oidcPath = '/.well-known/openid-configuration'
const oauthPath = '/.well-known/oauth-authorization-server'
const jwks = { body: { keys: [key.publicJwk] } }

/** The provider serves a good OpenID document (or `document` at `path`) and its key set. */
function serve(document: unknown = { issuer, jwks_uri: `${issuer}/jwks.json` }, path = oidcPath) {
  server.routes = { [path]: { body: document }, '/jwks.json': jwks }
  server.requested.length = 0
}

const options = (extra: Partial<KeyholeOptions> = {}): KeyholeOptions => ({
  discovery: true,
  issuer,
  audience,
  algorithms: ['ES256'],
  cache: false,
  ...extra,
})

const token = (header: Record<string, unknown> = { typ: 'at+jwt' }, extra = {}) =>
  sign(claims({ iss: issuer, ...extra }), key.privateKey, {
    alg: 'ES256',
    kid: 'discovery-1',
    ...header,
  })

t.test('the key set named by the OpenID document verifies tokens', async (t) => {
  serve()
  const authenticator = await createAuthenticator(options())
  t.same(server.requested, [oidcPath, '/jwks.json'], 'both read at start-up, before any token')
  const { capability } = await authenticator.authenticate(bearer(await token()))
  t.equal(capability.subject, 'user-1')
  t.same(server.requested, [oidcPath, '/jwks.json'], 'the token used the set fetched then')
})

t.test('an issuer with a path: OpenID appends, RFC 8414 inserts', async (t) => {
  const pathIssuer = `${issuer}/realms/forum`
  serve({ issuer: pathIssuer, jwks_uri: `${issuer}/jwks.json` }, `${oauthPath}/realms/forum`)
  const authenticator = await createAuthenticator(options({ issuer: pathIssuer }))
  t.same(server.requested, [`/realms/forum${oidcPath}`, `${oauthPath}/realms/forum`, '/jwks.json'])
  const { capability } = await authenticator.authenticate(
    bearer(await token(undefined, { iss: pathIssuer })),
  )
  t.equal(capability.subject, 'user-1', "RFC 8414's document, after OpenID's 404")
})

t.test('an issuer written with its trailing slash is compared as written', async (t) => {
  serve({ issuer: `${issuer}/`, jwks_uri: `${issuer}/jwks.json` })
  const authenticator = await createAuthenticator(options({ issuer: `${issuer}/` }))
  t.same(server.requested, [oidcPath, '/jwks.json'], '`/` is not doubled')
  const { capability } = await authenticator.authenticate(
    bearer(await token(undefined, { iss: `${issuer}/` })),
  )
  t.equal(capability.subject, 'user-1')
})

t.test('with discovery, typ at+jwt is required by default', async (t) => {
  serve()
  const authenticator = await createAuthenticator(options())
  for (const typ of ['at+jwt', 'application/at+jwt', 'AT+JWT', 'Application/At+Jwt']) {
    const { capability } = await authenticator.authenticate(bearer(await token({ typ })))
    t.equal(capability.subject, 'user-1', `${typ} (RFC 8725: case-insensitive, prefix optional)`)
  }
  const refused: [string, Record<string, unknown>][] = [
    ['typ JWT (an ID token, say)', { typ: 'JWT' }],
    ['no typ', {}],
    ['typ at+jwt with a suffix', { typ: 'at+jwt2' }],
    ['typ application/jwt', { typ: 'application/jwt' }],
  ]
  for (const [name, header] of refused) {
    const error = await authenticator.authenticate(bearer(await token(header))).catch((e) => e)
    t.match(error, { code: 'KH_TOKEN_CLAIM', statusCode: 401 }, name)
    t.match(error.reason, /^typ: the header is not at\+jwt/, `${name}: reason`)
  }
})

t.test("typ: false turns the check off, for providers that don't set at+jwt", async (t) => {
  serve()
  const authenticator = await createAuthenticator(options({ typ: false }))
  for (const header of [{ typ: 'JWT' }, {}, { typ: 'at+jwt' }]) {
    const { capability } = await authenticator.authenticate(bearer(await token(header)))
    t.equal(capability.subject, 'user-1', JSON.stringify(header))
  }
  const own = await createAuthenticator(options({ typ: 'JWT' }))
  await t.rejects(own.authenticate(bearer(await token())), { code: 'KH_TOKEN_CLAIM' })
})

t.test('without discovery nothing changes: typ is checked only when set', async (t) => {
  serve()
  const authenticator = await createAuthenticator({
    ...options({ discovery: false, issuer }),
    discovery: false,
    jwksUrl: `${issuer}/jwks.json`,
  })
  const { capability } = await authenticator.authenticate(bearer(await token({ typ: 'JWT' })))
  t.equal(capability.subject, 'user-1')
})

t.test('each fault of the document fails start-up with KH_DISCOVERY_FAILED', async (t) => {
  const document = { issuer, jwks_uri: `${issuer}/jwks.json` }
  const rows: [string, () => void, RegExp][] = [
    ['no document at either URL', () => serve({}, '/elsewhere'), /no discovery document: .*404/],
    [
      'redirects are not followed',
      () => {
        serve()
        server.routes = {
          [oidcPath]: { status: 302, headers: { location: '/doc' } },
          [oauthPath]: { status: 301, headers: { location: '/doc' } },
          '/doc': { body: document },
        }
      },
      /answered 302.*answered 301/,
    ],
    [
      'not JSON',
      () => (server.routes = { [oidcPath]: { body: '<html>' } }),
      /openid-configuration did not answer JSON/,
    ],
    ['a JSON array', () => serve([document]), /did not answer a JSON object/],
    ['JSON null', () => serve(null), /did not answer a JSON object/],
    ['no issuer', () => serve({ jwks_uri: document.jwks_uri }), /has no issuer/],
    [
      'another issuer',
      () => serve({ ...document, issuer: 'https://evil.test' }),
      /names the issuer "https:\/\/evil.test", not the configured "http:\/\/127/,
    ],
    [
      'the issuer with a trailing slash',
      () => serve({ ...document, issuer: `${issuer}/` }),
      /differ only by a trailing "\/"/,
    ],
    ['no jwks_uri', () => serve({ issuer }), /has no jwks_uri/],
    ['a jwks_uri that is no string', () => serve({ issuer, jwks_uri: 42 }), /has no jwks_uri/],
    [
      'a jwks_uri that is no URL',
      () => serve({ issuer, jwks_uri: 'jwks.json' }),
      /its jwks_uri is not a URL/,
    ],
    [
      'a jwks_uri over plain http to another host',
      () => serve({ issuer, jwks_uri: 'http://keys.example.test/jwks.json' }),
      /its jwks_uri must be https/,
    ],
  ]
  for (const [name, arrange, message] of rows) {
    arrange()
    await t.rejects(
      createAuthenticator(options()),
      { code: 'KH_DISCOVERY_FAILED', statusCode: 500, message },
      name,
    )
  }
})

t.test('a slow or absent provider fails start-up within the timeout', async (t) => {
  serve()
  server.routes[oidcPath] = { body: {}, delay: 1000 }
  await t.rejects(createAuthenticator(options({ jwks: { timeoutDuration: 50 } })), {
    code: 'KH_DISCOVERY_FAILED',
    message: /openid-configuration could not be fetched within 50 ms/,
  })
  server.routes[oidcPath] = { body: {}, bodyDelay: 1000 }
  await t.rejects(createAuthenticator(options({ jwks: { timeoutDuration: 50 } })), {
    code: 'KH_DISCOVERY_FAILED',
    message: /the answer could not be read in time/,
  })
  const gone = await startIssuerServer()
  await gone.close()
  await t.rejects(discoverJwksUrl(gone.origin, 1000), {
    code: 'KH_DISCOVERY_FAILED',
    message: /could not be fetched/,
  })
})

t.test('options that cannot work fail registration with KH_INVALID_OPTIONS', async (t) => {
  const rows: [string, Partial<KeyholeOptions>, RegExp][] = [
    ['no issuer', { issuer: undefined }, /^issuer: discovery needs exactly one issuer URL/],
    ['a list of issuers', { issuer: [issuer, issuer] }, /^issuer: discovery needs exactly one/],
    ['an issuer that is no URL', { issuer: 'id.example.test' }, /^issuer: not a URL/],
    [
      'an http issuer on another host',
      { issuer: 'http://id.example.test' },
      /^issuer: must be https for discovery/,
    ],
    ['an issuer with a query', { issuer: `${issuer}/?tenant=1` }, /no query or fragment/],
    ['an issuer with a fragment', { issuer: `${issuer}/#x` }, /no query or fragment/],
    ['an issuer with an empty query', { issuer: `${issuer}/?` }, /no query or fragment/],
    [
      'discovery and jwksUrl',
      { jwksUrl: `${issuer}/jwks.json` },
      /exactly one key source is required \(got jwksUrl, discovery\)/,
    ],
    ['discovery and HS256', { algorithms: ['HS256'] }, /^discovery: HS algorithms need a secret/],
    [
      'jwks tuning with a secret',
      { discovery: false, secret: 'x'.repeat(32), algorithms: ['HS256'], jwks: {} },
      /^jwks: only with jwksUrl or discovery/,
    ],
    ['discovery not a boolean', { discovery: 'yes' as never }, /^discovery:/],
  ]
  server.requested.length = 0
  for (const [name, extra, message] of rows) {
    await t.rejects(
      createAuthenticator(options(extra)),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
  t.same(server.requested, [], 'nothing fetched for options that cannot work')
})

t.test('https issuers: the URLs tried', async (t) => {
  const tried: string[] = []
  const fetchImpl = (async (url: URL) => {
    tried.push(String(url))
    return new Response('{}', { status: 404 })
  }) as typeof fetch
  for (const value of ['https://id.example.test', 'https://id.example.test/tenant/']) {
    await t.rejects(discoverJwksUrl(value, 1000, fetchImpl), { code: 'KH_DISCOVERY_FAILED' })
  }
  t.same(tried, [
    'https://id.example.test/.well-known/openid-configuration',
    'https://id.example.test/.well-known/oauth-authorization-server',
    'https://id.example.test/tenant/.well-known/openid-configuration',
    'https://id.example.test/.well-known/oauth-authorization-server/tenant',
  ])
})
