/**
 * Access tokens from oidc-provider, a certified OpenID Connect implementation, used as a team
 * with an identity provider uses keyhole: RFC 9068 JWT access tokens from the client credentials
 * and the authorization code grants, signed RS256, PS256, ES256 and EdDSA (and Ed25519, the fully
 * specified name), verified through the provider's JWKS on Fastify and on Express; scopes through
 * requireScope; the `permissions` claim the provider adds (`extraTokenClaims`) through
 * requireRole; an ID token refused as an access token.
 */
import t from 'tap'
import { adapters, startApi, type Adapter, type Call } from './helpers/api.ts'
import {
  ACCOUNT,
  API,
  GROUP,
  signingKey,
  startProvider,
  type SigningAlgorithm,
} from './helpers/provider.ts'

const algorithms = ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'] as const
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

/** What a team configures for its API with this provider. */
const options = (alg: SigningAlgorithm) => ({
  jwksUrl: provider.jwksUri,
  algorithms: [alg],
  issuer: provider.issuer,
  audience: API,
  typ: 'at+jwt',
})

// One API per adapter and algorithm, built on first use.
const apis = new Map<string, Promise<Call>>()
function api(adapter: Adapter, alg: SigningAlgorithm): Promise<Call> {
  const key = `${adapter} ${alg}`
  let call = apis.get(key)
  if (call === undefined) {
    call = startApi(t, adapter, options(alg))
    apis.set(key, call)
  }
  return call
}

const insufficientScope = (scope: string) =>
  `Bearer realm="keyhole", error="insufficient_scope", error_description="Insufficient scope", scope="${scope}"`

t.test('both grants, every algorithm, both adapters', async (t) => {
  for (const alg of algorithms) {
    const service = await provider.clientCredentials(alg, 'forum:read')
    const { accessToken: user } = await provider.authorizationCode(alg)
    for (const adapter of adapters) {
      const call = await api(adapter, alg)
      const at = `${adapter} ${alg}`
      t.same(
        (await call('GET', '/me', service)).body,
        { subject: `service-${alg}`, scopes: ['forum:read'], moderatorOf: [] },
        `${at}: client credentials → the client is the subject, its scope`,
      )
      t.same(
        (await call('GET', '/me', user)).body,
        { subject: ACCOUNT, scopes: ['forum:read', 'forum:write'], moderatorOf: [GROUP] },
        `${at}: authorization code → the user, the scopes consented, the permissions claim`,
      )
      t.equal((await call('GET', '/threads', service)).status, 200, `${at}: forum:read`)
      t.equal((await call('POST', '/threads', user)).status, 201, `${at}: forum:write, moderator`)
      const refused = await call('POST', '/threads', service)
      t.match(
        refused,
        {
          status: 403,
          challenge: insufficientScope('forum:write'),
          body: { code: 'KH_INSUFFICIENT_SCOPE' },
        },
        `${at}: without forum:write → 403 insufficient_scope`,
      )
    }
  }
})

t.test('a token signed with an algorithm the API does not list → 401', async (t) => {
  const rs256 = await provider.clientCredentials('RS256')
  const es256 = await provider.clientCredentials('ES256')
  for (const adapter of adapters) {
    t.match(await (await api(adapter, 'ES256'))('GET', '/me', rs256), {
      status: 401,
      body: { code: 'KH_TOKEN_ALGORITHM' },
    })
    t.match(await (await api(adapter, 'PS256'))('GET', '/me', rs256), {
      status: 401,
      body: { code: 'KH_TOKEN_ALGORITHM' },
    })
    t.match(await (await api(adapter, 'RS256'))('GET', '/me', es256), {
      status: 401,
      body: { code: 'KH_TOKEN_ALGORITHM' },
    })
  }
})

t.test('scopes and roles are checked apart', async (t) => {
  const both = await provider.clientCredentials('ES256', 'forum:read forum:write')
  const writeOnly = await provider.clientCredentials('ES256', 'forum:write')
  const none = await provider.clientCredentials('ES256', '')
  const { accessToken: reader } = await provider.authorizationCode('ES256', 'forum:read')
  for (const adapter of adapters) {
    const call = await api(adapter, 'ES256')
    t.match(
      await call('POST', '/threads', both),
      {
        status: 403,
        body: { code: 'KH_FORBIDDEN' },
      },
      `${adapter}: both scopes, no moderator role in the token → 403 KH_FORBIDDEN`,
    )
    t.match(
      await call('GET', '/threads', writeOnly),
      {
        status: 403,
        challenge: insufficientScope('forum:read'),
      },
      `${adapter}: forum:write does not include forum:read`,
    )
    t.same((await call('GET', '/me', none)).body.scopes, [], `${adapter}: no scope requested`)
    t.match(await call('GET', '/threads', none), {
      status: 403,
      challenge: insufficientScope('forum:read'),
    })
    t.match(
      await call('POST', '/threads', reader),
      {
        status: 403,
        challenge: insufficientScope('forum:write'),
      },
      `${adapter}: a moderator whose client was granted forum:read only`,
    )
  }
})

t.test('an ID token is refused as an access token', async (t) => {
  // A single-page app and its API sharing one registration: the API accepts the client ID as an
  // audience, so only the token type tells an ID token from an access token.
  const { accessToken, idToken } = await provider.authorizationCode('RS256')
  for (const adapter of adapters) {
    const call = await startApi(t, adapter, {
      ...options('RS256'),
      audience: [API, 'webapp-RS256'],
    })
    t.equal((await call('GET', '/me', accessToken)).status, 200, `${adapter}: the access token`)
    t.match(
      await call('GET', '/me', idToken),
      {
        status: 401,
        body: { code: 'KH_TOKEN_CLAIM' },
      },
      `${adapter}: the ID token (typ JWT, not at+jwt)`,
    )
  }
})
