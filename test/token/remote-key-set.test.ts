/**
 * What keyhole adds to jose's remote key set: a fetched RSA key with exponent 1 is never used (a
 * token forged without any private key is refused), and a failing key server is not hammered.
 * Several algorithms of one key type with one key set: test/token/algorithms.test.ts.
 */
import { createHash, generateKeyPairSync } from 'node:crypto'
import type { JWK } from 'jose'
import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { MAX_RETRY_DELAY, remoteKeySet } from '../../src/token/remote-key-set.ts'
import { startJwksServer } from '../helpers/jwks-server.ts'
import { audience, b64, claims, issuer, keys, sign } from '../helpers/tokens.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const es = await keys('ES256', 'es-1')

async function setup(
  t: { teardown(fn: () => unknown): void },
  served: JWK[],
  algorithms: ('ES256' | 'RS256')[],
  jwks: Record<string, number> = {},
) {
  const server = await startJwksServer(served)
  t.teardown(() => server.close())
  const authenticator = await createAuthenticator({
    jwksUrl: server.url,
    jwks,
    algorithms,
    issuer,
    audience,
    cache: false,
  })
  return { server, authenticator }
}

/**
 * An RS256 "signature" valid for ANY key with e = 1: the PKCS#1 v1.5 encoding of the hash itself
 * (s^1 mod n = s). Needs no private key.
 */
function forgeForExponentOne(header: object, payload: object, modulusBytes: number): string {
  const input = `${b64(header)}.${b64(payload)}`
  const digest = createHash('sha256').update(input).digest()
  const prefix = Buffer.from('3031300d060960864801650304020105000420', 'hex')
  const padding = Buffer.alloc(modulusBytes - 3 - prefix.length - digest.length, 0xff)
  const encoded = Buffer.concat([Buffer.from([0, 1]), padding, Buffer.from([0]), prefix, digest])
  return `${input}.${encoded.toString('base64url')}`
}

t.test('a fetched RSA key with public exponent 1 is never used', async (t) => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as JWK), e: 'AQ', kid: 'e1' }
  const { authenticator } = await setup(t, [jwk], ['RS256'])
  const forged = forgeForExponentOne({ alg: 'RS256', kid: 'e1' }, claims({ sub: 'mallory' }), 256)
  const error = await authenticator.authenticate(bearer(forged)).catch((e) => e)
  t.match(error, { code: 'KH_TOKEN_KEY_UNKNOWN', statusCode: 401 })
  t.match(error.cause, { message: /unsafe public exponent/ })
  t.match(error.headers, { 'www-authenticate': /error="invalid_token"/ })
})

t.test('a fetched RSA key with a safe exponent verifies, checked once', async (t) => {
  const rs = await keys('RS256', 'rs-1')
  const { authenticator } = await setup(t, [rs.publicJwk], ['RS256'])
  const token = await sign(claims(), rs.privateKey, { alg: 'RS256', kid: 'rs-1' })
  for (let i = 0; i < 2; i++) {
    const { capability } = await authenticator.authenticate(bearer(token))
    t.equal(capability.subject, 'user-1')
  }
})

t.test('a failing key server gets one fetch per back-off, not one per request', async (t) => {
  const { authenticator, server } = await setup(t, [es.publicJwk], ['ES256'], {
    cooldownDuration: 60_000,
  })
  server.status = 500
  authenticator.invalidate() // the set fetched at start-up is forgotten: the next token refetches
  const token = await sign(claims(), es.privateKey, { alg: 'ES256', kid: 'es-1' })
  for (let i = 0; i < 20; i++) {
    await t.rejects(authenticator.authenticate(bearer(token)), {
      code: 'KH_KEYS_UNAVAILABLE',
      statusCode: 503,
    })
  }
  t.equal(
    server.fetches,
    2,
    `start-up's fetch, then 20 requests, 1 fetch (back-off ${MAX_RETRY_DELAY} ms at most)`,
  )
})

t.test('a key server that is down is retried after the back-off', async (t) => {
  const { authenticator, server } = await setup(t, [es.publicJwk], ['ES256'], {
    cooldownDuration: 20,
  })
  const token = await sign(claims(), es.privateKey, { alg: 'ES256', kid: 'es-1' })
  server.status = 503
  authenticator.invalidate()
  await t.rejects(authenticator.authenticate(bearer(token)), { code: 'KH_KEYS_UNAVAILABLE' })
  server.status = 200
  await new Promise((resolve) => setTimeout(resolve, 40))
  const { capability } = await authenticator.authenticate(bearer(token))
  t.equal(capability.subject, 'user-1', 'accepted once the server answers again')
  t.equal(server.fetches, 3, "start-up's, the failed one, the one after the back-off")
})

t.test('a connection failure also starts the back-off', async (t) => {
  const { authenticator, server } = await setup(t, [es.publicJwk], ['ES256'], {
    cooldownDuration: 60_000,
  })
  await server.close()
  authenticator.invalidate()
  const token = await sign(claims(), es.privateKey, { alg: 'ES256', kid: 'es-1' })
  const first = await authenticator.authenticate(bearer(token)).catch((e) => e)
  t.match(first, { code: 'KH_KEYS_UNAVAILABLE' })
  t.not(first.cause?.name, 'RecentFailure', 'the first request tried the network')
  const second = await authenticator.authenticate(bearer(token)).catch((e) => e)
  t.match(second, { code: 'KH_KEYS_UNAVAILABLE', cause: { name: 'RecentFailure' } })
})

t.test('generation: bumped when a refetch drops a key, not when one is added', async (t) => {
  const other = await keys('ES256', 'es-2')
  const server = await startJwksServer([es.publicJwk])
  t.teardown(() => server.close())
  const options = { cooldownDuration: 60_000, cacheMaxAge: 60_000, timeoutDuration: 5000 }
  const set = remoteKeySet(new URL(server.url), options)
  t.equal(set.stale, true, 'nothing fetched yet')
  await set({ alg: 'ES256', kid: 'es-1' })
  t.same([set.generation, set.stale], [0, false])
  const steps: [JWK[], number][] = [
    [[es.publicJwk, other.publicJwk], 0],
    [[other.publicJwk, es.publicJwk], 0],
    [[{ ...other.publicJwk }, { ...es.publicJwk }], 0],
    [[other.publicJwk], 1],
    [[es.publicJwk, other.publicJwk], 1],
    [[es.publicJwk, { ...other.publicJwk, use: undefined }], 2],
    [[{ ...es.publicJwk, kid: 'es-3' }], 3],
  ]
  for (const [served, generation] of steps) {
    server.keys = served
    await set.refresh()
    t.equal(set.generation, generation, served.map((k) => k.kid).join(', '))
  }
  set.invalidate()
  t.same([set.generation, set.stale], [4, true], 'invalidate() bumps it and asks for a refetch')
  await set.refresh()
  t.equal(set.stale, false)
})
