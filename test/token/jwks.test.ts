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
  authenticator.invalidate() // the set fetched at start-up is forgotten: the next token refetches
  await t.rejects(authenticator.authenticate(bearer(await signed('key-1'))), {
    code: 'KH_TOKEN_KEY_UNKNOWN',
  })
})

t.test('a key server that is down answers 503, never accepts', async (t) => {
  const { authenticator, server } = await setup(t)
  await server.close()
  authenticator.invalidate() // the set fetched at start-up is forgotten: the next token refetches
  const error = await authenticator.authenticate(bearer(await signed('key-1'))).catch((e) => e)
  t.match(error, { code: 'KH_KEYS_UNAVAILABLE', statusCode: 503, realm: 'keyhole' })
  t.same(error.headers, {}, 'no WWW-Authenticate: the token was not judged')
})

t.test('a key server answering 500 answers 503', async (t) => {
  const { authenticator, server } = await setup(t)
  server.status = 500
  authenticator.invalidate() // the set fetched at start-up is forgotten: the next token refetches
  await t.rejects(authenticator.authenticate(bearer(await signed('key-1'))), {
    code: 'KH_KEYS_UNAVAILABLE',
    statusCode: 503,
  })
})

t.test('a key server slower than timeoutDuration answers 503', async (t) => {
  const { authenticator, server } = await setup(t, { timeoutDuration: 100 })
  server.delay = 1000
  authenticator.invalidate() // the set fetched at start-up is forgotten: the next token refetches
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

/** An authenticator over a key set holding key-1 and key-2, with the verified-token cache on. */
async function cached(t: { teardown(fn: () => unknown): void }, jwks: Record<string, number>) {
  const server = await startJwksServer([first.publicJwk, second.publicJwk])
  t.teardown(() => server.close())
  const authenticator = await createAuthenticator({
    jwksUrl: server.url,
    jwks,
    algorithms: ['ES256'],
    issuer,
    audience,
  })
  return { server, authenticator }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('a key that leaves the key set takes its cached tokens along', async (t) => {
  const { authenticator, server } = await cached(t, { cooldownDuration: 40, cacheMaxAge: 50 })
  const withFirst = await signed('key-1')
  const withSecond = await signed('key-2', second.privateKey)
  t.ok(await authenticator.authenticate(bearer(withFirst)), 'verified and cached')
  t.ok(await authenticator.authenticate(bearer(withSecond)))
  t.ok(await authenticator.authenticate(bearer(withFirst)), 'a cache hit')
  server.keys = [second.publicJwk]
  const fetches = server.fetches
  await pause(60)
  // Past cacheMaxAge: the hit refetches the set, sees key-1 gone and checks the token again.
  const error = await authenticator.authenticate(bearer(withFirst)).catch((e) => e)
  t.match(error, { code: 'KH_TOKEN_KEY_UNKNOWN', statusCode: 401 })
  t.match(error.headers, { 'www-authenticate': /error="invalid_token"/ })
  t.equal(server.fetches, fetches + 1, 'one refetch (the kid miss is within the cooldown)')
  await t.rejects(authenticator.authenticate(bearer(withFirst)), { code: 'KH_TOKEN_KEY_UNKNOWN' })
  t.equal(
    (await authenticator.authenticate(bearer(withSecond))).capability.subject,
    'user-1',
    'a cached token of a key still held passes',
  )
  const fresh = await sign(claims({ sub: 'user-2' }), second.privateKey, {
    alg: 'ES256',
    kid: 'key-2',
  })
  t.equal((await authenticator.authenticate(bearer(fresh))).capability.subject, 'user-2')
})

t.test('a refetch made for another request also withdraws the cached tokens', async (t) => {
  const { authenticator, server } = await cached(t, { cooldownDuration: 1, cacheMaxAge: 50 })
  const withFirst = await signed('key-1')
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  server.keys = [second.publicJwk]
  await pause(60)
  // A token not cached yet makes jose refetch the stale set.
  t.ok(await authenticator.authenticate(bearer(await signed('key-2', second.privateKey))))
  await t.rejects(authenticator.authenticate(bearer(withFirst)), { code: 'KH_TOKEN_KEY_UNKNOWN' })
})

t.test('a key replaced under the same kid takes its cached tokens along', async (t) => {
  const { authenticator, server } = await cached(t, { cooldownDuration: 1, cacheMaxAge: 50 })
  const withFirst = await signed('key-1')
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  server.keys = [{ ...second.publicJwk, kid: 'key-1' }]
  await pause(60)
  await t.rejects(authenticator.authenticate(bearer(withFirst)), { code: 'KH_TOKEN_SIGNATURE' })
  t.ok(await authenticator.authenticate(bearer(await signed('key-1', second.privateKey))))
})

t.test('a cached token needs a key set no older than cacheMaxAge: down → 503', async (t) => {
  const { authenticator, server } = await cached(t, { cooldownDuration: 1, cacheMaxAge: 50 })
  const withFirst = await signed('key-1')
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  t.ok(await authenticator.authenticate(bearer(withFirst)), 'a hit within cacheMaxAge')
  server.status = 500
  await pause(60)
  const error = await authenticator.authenticate(bearer(withFirst)).catch((e) => e)
  t.match(error, { code: 'KH_KEYS_UNAVAILABLE', statusCode: 503 })
  server.status = 200
  await pause(20)
  t.ok(await authenticator.authenticate(bearer(withFirst)), 'accepted once the set is fetched')
})

t.test('invalidate() refetches the key set before the next token is trusted', async (t) => {
  const { authenticator, server } = await cached(t, { cooldownDuration: 60_000 })
  const withFirst = await signed('key-1')
  const withSecond = await signed('key-2', second.privateKey)
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  t.ok(await authenticator.authenticate(bearer(withSecond)))
  t.equal(server.fetches, 1)
  server.keys = [second.publicJwk]
  authenticator.invalidate()
  await t.rejects(authenticator.authenticate(bearer(withFirst)), { code: 'KH_TOKEN_KEY_UNKNOWN' })
  t.equal(server.fetches, 2, 'refetched at once, cooldown or not')
  t.ok(await authenticator.authenticate(bearer(withSecond)))
  t.equal(server.fetches, 2)
  server.status = 500
  authenticator.invalidate()
  await t.rejects(authenticator.authenticate(bearer(withSecond)), { code: 'KH_KEYS_UNAVAILABLE' })
})
