import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { startJwksServer } from '../helpers/jwks-server.ts'
import { audience, claims, issuer, keys, sign } from '../helpers/tokens.ts'

const first = await keys('ES256', 'key-1')
const second = await keys('ES256', 'key-2')
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const signed = (kid: string, key = first.privateKey) => sign(claims(), key, { alg: 'ES256', kid })

async function setup(t: { teardown(fn: () => unknown): void }, jwks: Record<string, number> = {}) {
  const server = await startJwksServer([first.publicJwk])
  t.teardown(() => server.close())
  const authenticator = await createAuthenticator({
    jwksUrl: server.url,
    jwks,
    algorithms: ['ES256'],
    issuer,
    audience,
    cache: false,
  })
  return { server, authenticator }
}

t.test('a token whose kid is in the key set is accepted', async (t) => {
  const { authenticator } = await setup(t)
  const { capability } = await authenticator.authenticate(bearer(await signed('key-1')))
  t.equal(capability.subject, 'user-1')
})

t.test('an unknown kid is KH_TOKEN_KEY_UNKNOWN; kid text is only looked up', async (t) => {
  const { authenticator, server } = await setup(t, { cooldownDuration: 60_000 })
  for (const kid of ['key-3', '../../etc/passwd', "key-1' OR '1'='1", '$(rm -rf /)', 'KEY-1']) {
    const error = await authenticator.authenticate(bearer(await signed(kid))).catch((e) => e)
    t.match(error, { code: 'KH_TOKEN_KEY_UNKNOWN', statusCode: 401 }, kid)
    t.match(error.headers, { 'www-authenticate': /error="invalid_token"/ })
  }
  t.ok(
    server.fetches <= 2,
    `a kid-miss flood is bounded by the cooldown (${server.fetches} fetches)`,
  )
})

t.test('a duplicate kid in the key set is refused', async (t) => {
  const { authenticator, server } = await setup(t)
  server.keys = [first.publicJwk, { ...second.publicJwk, kid: 'key-1' }]
  await t.rejects(authenticator.authenticate(bearer(await signed('key-1'))), {
    code: 'KH_TOKEN_KEY_UNKNOWN',
  })
})

t.test('a key server that is down answers 503, never accepts', async (t) => {
  const { authenticator, server } = await setup(t)
  await server.close()
  const error = await authenticator.authenticate(bearer(await signed('key-1'))).catch((e) => e)
  t.match(error, { code: 'KH_KEYS_UNAVAILABLE', statusCode: 503, realm: 'keyhole' })
  t.same(error.headers, {}, 'no WWW-Authenticate: the token was not judged')
})

t.test('a key server answering 500 answers 503', async (t) => {
  const { authenticator, server } = await setup(t)
  server.status = 500
  await t.rejects(authenticator.authenticate(bearer(await signed('key-1'))), {
    code: 'KH_KEYS_UNAVAILABLE',
    statusCode: 503,
  })
})

t.test('a key server slower than timeoutDuration answers 503', async (t) => {
  const { authenticator, server } = await setup(t, { timeoutDuration: 100 })
  server.delay = 1000
  await t.rejects(authenticator.authenticate(bearer(await signed('key-1'))), {
    code: 'KH_KEYS_UNAVAILABLE',
    statusCode: 503,
  })
})

t.test('rotation: a new key is accepted after refresh, a removed key refused', async (t) => {
  const { authenticator, server } = await setup(t, { cooldownDuration: 1, cacheMaxAge: 1 })
  t.ok(await authenticator.authenticate(bearer(await signed('key-1'))))
  server.keys = [second.publicJwk]
  await new Promise((resolve) => setTimeout(resolve, 20))
  const { capability } = await authenticator.authenticate(
    bearer(await signed('key-2', second.privateKey)),
  )
  t.equal(capability.subject, 'user-1', 'the new key verifies after refresh')
  await new Promise((resolve) => setTimeout(resolve, 20))
  await t.rejects(authenticator.authenticate(bearer(await signed('key-1'))), {
    code: 'KH_TOKEN_KEY_UNKNOWN',
  })
})
