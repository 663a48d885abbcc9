/**
 * Discovery against oidc-provider's own discovery document: `discovery: true` with the issuer and
 * nothing else about keys finds the JWKS; with it, access tokens must be typed `at+jwt`, so the
 * provider's ID token is refused by default even when the API accepts the client ID as an
 * audience; one key set serves RS256, PS256, ES256 and EdDSA at once, each key bound to its
 * algorithm; a token the provider issued for two days is refused by the default lifetime bound;
 * an issuer URL that is not exactly the provider's fails start-up. Both adapters.
 */
import t from 'tap'
import { adapters, startApi } from './helpers/api.ts'
import { API, signingKey, startProvider } from './helpers/provider.ts'

const algorithms = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const
const provider = await startProvider(
  t,
  [
    await signingKey('RS256', 'rsa-1'),
    await signingKey('PS256', 'rsa-pss-1'),
    await signingKey('ES256', 'ec-1'),
    await signingKey('EdDSA', 'ed-1'),
  ],
  algorithms,
)
const discovered = {
  discovery: true,
  issuer: provider.issuer,
  audience: [API, 'webapp-RS256'],
  algorithms: [...algorithms],
}

t.test('the issuer alone: keys found, every algorithm from one key set', async (t) => {
  const tokens = await Promise.all(
    algorithms.map(async (alg) => [
      alg,
      await provider.clientCredentials(alg),
      (await provider.authorizationCode(alg)).accessToken,
    ]),
  )
  for (const adapter of adapters) {
    const call = await startApi(t, adapter, discovered)
    for (const [alg, service, user] of tokens) {
      t.same(
        (await call('GET', '/me', service)).body.subject,
        `service-${alg}`,
        `${adapter} ${alg}`,
      )
      t.equal((await call('POST', '/threads', user)).status, 201, `${adapter} ${alg}: the user`)
    }
  }
})

t.test('with discovery an ID token is refused by default', async (t) => {
  const { accessToken, idToken } = await provider.authorizationCode('RS256')
  for (const adapter of adapters) {
    const call = await startApi(t, adapter, discovered)
    t.equal((await call('GET', '/me', accessToken)).status, 200, `${adapter}: the access token`)
    t.match(
      await call('GET', '/me', idToken),
      { status: 401, body: { code: 'KH_TOKEN_CLAIM' } },
      `${adapter}: the ID token, its audience accepted`,
    )
  }
})

t.test('an access token living two days is refused by the default one-day bound', async (t) => {
  const long = await provider.clientCredentials('ES256', 'forum:read', 'longlived')
  for (const adapter of adapters) {
    const call = await startApi(t, adapter, discovered)
    t.match(
      await call('GET', '/me', long),
      { status: 401, body: { code: 'KH_TOKEN_CLAIM' } },
      `${adapter}: exp - iat = 172800 s`,
    )
    const allowed = await startApi(t, adapter, { ...discovered, maxTokenLifetime: 3 * 86_400 })
    t.equal((await call('GET', '/me', await provider.clientCredentials('ES256'))).status, 200)
    t.equal((await allowed('GET', '/me', long)).status, 200, `${adapter}: with a longer bound`)
  }
})

t.test('an issuer URL that is not exactly the provider’s fails start-up', async (t) => {
  for (const issuer of [`${provider.issuer}/`, `${provider.issuer}/other`]) {
    for (const adapter of adapters) {
      await t.rejects(
        startApi(t, adapter, { ...discovered, issuer }),
        { code: 'KH_DISCOVERY_FAILED' },
        `${adapter}: ${issuer}`,
      )
    }
  }
})
