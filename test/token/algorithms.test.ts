/**
 * Algorithm names and mixed key sets. `EdDSA` (RFC 8037) and `Ed25519` (RFC 9864's fully
 * specified name) are two names of one signature: the allowlist matches the token's header
 * exactly, as jose does, and either or both may be listed. Several asymmetric algorithms may share
 * one key set when each key is bound to one algorithm, by its `alg` or by its type; a token's
 * header never picks an algorithm its key was not meant for: an RSA key with `alg: RS256` never
 * verifies a PS256 token, and an RSA key without `alg` is not used at all while several RSA
 * algorithms are listed (it would verify RS256 and PS256 alike).
 */
import { generateKeyPairSync } from 'node:crypto'
import { SignJWT, type CryptoKey, type JWK } from 'jose'
import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { startJwksServer } from '../helpers/jwks-server.ts'
import { audience, claims, issuer, keys, sign } from '../helpers/tokens.ts'
import type { KeyholeOptions } from '../../src/options.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const ed = await keys('EdDSA', 'ed-1')
const es = await keys('ES256', 'es-1')

/** An RSA key pair (a KeyObject signs any RSA algorithm); the public JWK with `alg` if given. */
function rsa(kid: string, alg: string | undefined) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk: JWK = {
    ...(publicKey.export({ format: 'jwk' }) as JWK),
    kid,
    use: 'sig',
    ...(alg ? { alg } : {}),
  }
  return { privateKey: privateKey as unknown as CryptoKey, jwk }
}
const rs256 = rsa('rs', 'RS256')
const ps256 = rsa('ps', 'PS256')
const bare = rsa('bare', undefined)

async function withKeySet(
  t: { teardown(fn: () => unknown): void },
  served: JWK[],
  algorithms: KeyholeOptions['algorithms'],
) {
  const server = await startJwksServer(served)
  t.teardown(() => server.close())
  return createAuthenticator({ jwksUrl: server.url, algorithms, issuer, audience, cache: false })
}

const signed = (key: CryptoKey, alg: string, kid: string) => sign(claims(), key, { alg, kid })

t.test('EdDSA and Ed25519: the header must name a listed one', async (t) => {
  const ed25519Jwk = { ...ed.publicJwk, alg: undefined }
  for (const [listed, accepted, refused] of [
    [['EdDSA'], ['EdDSA'], ['Ed25519']],
    [['Ed25519'], ['Ed25519'], ['EdDSA']],
    [['EdDSA', 'Ed25519'], ['EdDSA', 'Ed25519'], []],
  ] as const) {
    const authenticator = await withKeySet(t, [ed25519Jwk], listed)
    for (const alg of accepted) {
      const { capability } = await authenticator.authenticate(
        bearer(await signed(ed.privateKey, alg, 'ed-1')),
      )
      t.equal(capability.subject, 'user-1', `${listed.join('+')} accepts ${alg}`)
    }
    for (const alg of refused) {
      const error = await authenticator
        .authenticate(bearer(await signed(ed.privateKey, alg, 'ed-1')))
        .catch((e) => e)
      t.match(error, { code: 'KH_TOKEN_ALGORITHM', reason: 'alg: not in algorithms' }, alg)
    }
  }
})

t.test('one Ed25519 public key may serve both names', async (t) => {
  const authenticator = await createAuthenticator({
    publicKey: ed.publicPem,
    algorithms: ['EdDSA', 'Ed25519'],
    issuer,
    audience,
  })
  for (const alg of ['EdDSA', 'Ed25519']) {
    const { capability } = await authenticator.authenticate(
      bearer(await signed(ed.privateKey, alg, 'x')),
    )
    t.equal(capability.subject, 'user-1', alg)
  }
  await t.rejects(
    createAuthenticator({ publicKey: ed.publicJwk, algorithms: ['Ed25519'], issuer }),
    { code: 'KH_INVALID_OPTIONS', message: /^publicKey: the JWK's alg is not Ed25519$/ },
    'a JWK whose alg is EdDSA is not listed under Ed25519 alone',
  )
  await t.rejects(
    createAuthenticator({ publicKey: ed.publicPem, algorithms: ['EdDSA', 'ES256'], issuer }),
    { code: 'KH_INVALID_OPTIONS', message: /serves exactly one algorithm/ },
  )
})

t.test('RS256 and PS256 with one key set: each key serves its own alg', async (t) => {
  const authenticator = await withKeySet(
    t,
    [rs256.jwk, ps256.jwk, es.publicJwk],
    ['RS256', 'PS256', 'ES256'],
  )
  const accepted: [CryptoKey, string, string][] = [
    [rs256.privateKey, 'RS256', 'rs'],
    [ps256.privateKey, 'PS256', 'ps'],
    [es.privateKey, 'ES256', 'es-1'],
  ]
  for (const [key, alg, kid] of accepted) {
    const { capability } = await authenticator.authenticate(bearer(await signed(key, alg, kid)))
    t.equal(capability.subject, 'user-1', `${alg} with the key for ${alg}`)
  }
  const refused: [string, CryptoKey, string, string][] = [
    ['a PS256 header on the RS256 key', rs256.privateKey, 'PS256', 'rs'],
    ['an RS256 header on the PS256 key', ps256.privateKey, 'RS256', 'ps'],
  ]
  for (const [name, key, alg, kid] of refused) {
    const error = await authenticator
      .authenticate(bearer(await signed(key, alg, kid)))
      .catch((e) => e)
    t.match(error, { code: 'KH_TOKEN_KEY_UNKNOWN', statusCode: 401 }, name)
    t.equal(error.reason, 'kid: no key of the key set matches the kid and alg', `${name}: reason`)
  }
})

t.test('an RSA key without alg: used with one RSA algorithm, not with several', async (t) => {
  const single = await withKeySet(t, [bare.jwk], ['PS256'])
  const { capability } = await single.authenticate(
    bearer(await signed(bare.privateKey, 'PS256', 'bare')),
  )
  t.equal(capability.subject, 'user-1', 'bound by the configuration: one RSA algorithm')

  const several = await withKeySet(t, [bare.jwk, rs256.jwk], ['RS256', 'PS256'])
  for (const alg of ['RS256', 'PS256']) {
    const error = await several
      .authenticate(bearer(await signed(bare.privateKey, alg, 'bare')))
      .catch((e) => e)
    t.match(error, { code: 'KH_TOKEN_KEY_UNKNOWN', statusCode: 401 }, alg)
    t.match(error.reason, /RSA keys without alg, unused while several RSA algorithms/, alg)
  }
  const { capability: bound } = await several.authenticate(
    bearer(await signed(rs256.privateKey, 'RS256', 'rs')),
  )
  t.equal(bound.subject, 'user-1', 'the keys with alg still serve')
  const error = await several
    .authenticate(bearer(await signed(rs256.privateKey, 'RS256', 'missing')))
    .catch((e) => e)
  t.match(error.reason, /RSA keys without alg/, 'a set that dropped keys says so on a miss')
})

t.test(
  'a set without unbound RSA keys, and sets jose refuses, with several RSA algorithms',
  async (t) => {
    const server = await startJwksServer([rs256.jwk, es.publicJwk])
    t.teardown(() => server.close())
    const authenticator = await createAuthenticator({
      jwksUrl: server.url,
      algorithms: ['RS256', 'PS256', 'ES256'],
      issuer,
      audience,
      cache: false,
      jwks: { cooldownDuration: 1, cacheMaxAge: 1 },
    })
    const error = await authenticator
      .authenticate(bearer(await signed(rs256.privateKey, 'RS256', 'other')))
      .catch((e) => e)
    t.equal(error.reason, 'kid: no key of the key set matches the kid and alg')
    for (const [name, body] of [
      ['not JSON', '{'],
      ['no keys', '{}'],
      ['null', 'null'],
      ['a key that is null', '{"keys":[null]}'],
    ] as const) {
      server.keys = JSON.parse('[]')
      const original = server.keys
      ;(server as unknown as { keys: unknown }).keys = original
      const raw = await startRawServer(body)
      t.teardown(() => raw.close())
      // Fetched at start-up: a set jose refuses stops it (KH_KEYS_UNAVAILABLE later, on a refetch).
      await t.rejects(
        createAuthenticator({ jwksUrl: raw.url, algorithms: ['RS256', 'PS256'], issuer, audience }),
        { code: 'KH_JWKS_FAILED', message: /could not be fetched at start-up/ },
        name,
      )
    }
  },
)

/** A server answering `body` verbatim. */
async function startRawServer(body: string) {
  const { createServer } = await import('node:http')
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

t.test('algorithm confusion stays refused with mixed sets', async (t) => {
  // HS256 with a public key as the secret: HS algorithms need a secret, never a key set.
  await t.rejects(
    createAuthenticator({
      jwksUrl: 'https://id.example.test/jwks',
      algorithms: ['RS256', 'HS256'],
    }),
    { code: 'KH_INVALID_OPTIONS', message: /^algorithms: HS and asymmetric/ },
  )
  const authenticator = await withKeySet(t, [rs256.jwk, ps256.jwk], ['RS256', 'PS256'])
  const hs = await new SignJWT(claims())
    .setProtectedHeader({ alg: 'HS256', kid: 'rs' })
    .sign(new TextEncoder().encode(JSON.stringify(rs256.jwk)))
  await t.rejects(authenticator.authenticate(bearer(hs)), { code: 'KH_TOKEN_ALGORITHM' })
})
