/**
 * oidc-provider (a certified OpenID Connect implementation) run in-process on 127.0.0.1, set up as
 * a team sets up its provider for an API: resource indicators (RFC 8707) with RFC 9068 JWT access
 * tokens for the API, client credentials, the authorization code flow (PKCE) whose login needs no
 * page (the interaction is finished in code, as a login page would finish it), and a `permissions`
 * claim put into access tokens by `extraTokenClaims`.
 *
 * One client per signing algorithm and grant (`service-<alg>`, `webapp-<alg>`; `longlived-<alg>`,
 * whose access tokens live two days): the resource
 * server's signing algorithm is the client's. Tokens are obtained over HTTP, as a client does.
 * `rotate(keys)` puts a provider with another key set behind the same issuer URL (oidc-provider
 * reads its keys once), so keyhole sees the provider's own JWKS change.
 */
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import type { Provider } from 'oidc-provider'

/** The API's resource indicator: the access tokens' audience. */
export const API = 'https://api.keyhole.test'
/** The scopes the API defines. */
export const API_SCOPES = 'forum:read forum:write'
/** The user the authorization code flow logs in. */
export const ACCOUNT = 'alice'
/** The group the user moderates (the `permissions` claim added to the user's access tokens). */
export const GROUP = '6f1d3c1e-8f4b-4a59-9f57-0a0d3c1b2e4f'

const REDIRECT_URI = 'https://app.keyhole.test/callback'
const SECRET = 'an-interop-client-secret-of-at-least-32-bytes'

/** The JWS algorithms the suite has the provider sign access tokens with. */
export type SigningAlgorithm = 'RS256' | 'PS256' | 'ES256' | 'EdDSA' | 'Ed25519'

/** A private signing key as oidc-provider takes it (a private JWK with its `kid`). */
export type SigningKey = JWK & { kid: string }

/**
 * A private key for `alg`, with `kid` and (except for Ed25519 keys, which serve EdDSA and
 * Ed25519) `alg` set, as a provider publishes them.
 */
export async function signingKey(alg: SigningAlgorithm, kid: string): Promise<SigningKey> {
  const type = alg === 'EdDSA' ? 'Ed25519' : alg
  const { privateKey } = await generateKeyPair(type, { extractable: true })
  const jwk = await exportJWK(privateKey)
  return alg === 'EdDSA' || alg === 'Ed25519'
    ? { ...jwk, kid, use: 'sig' }
    : { ...jwk, kid, alg, use: 'sig' }
}

export interface Tokens {
  readonly accessToken: string
  readonly idToken?: string
}

export interface IdentityProvider {
  /** The issuer identifier, `http://127.0.0.1:<port>`. */
  readonly issuer: string
  /** The provider's JWKS endpoint (from its discovery document). */
  readonly jwksUri: string
  /** How many times the JWKS endpoint was fetched. */
  readonly jwksFetches: number
  /**
   * An access token from the client credentials grant, signed with `alg`; the `longlived` client's
   * tokens live two days.
   */
  clientCredentials(
    alg: SigningAlgorithm,
    scope?: string,
    client?: 'service' | 'longlived',
  ): Promise<string>
  /** The access and ID tokens of an authorization code flow (the user logs in, consents). */
  authorizationCode(alg: SigningAlgorithm, scope?: string): Promise<Required<Tokens>>
  /** Serves a provider with `keys` instead, at the same issuer URL. */
  rotate(keys: readonly SigningKey[]): Promise<void>
}

interface Teardown {
  teardown(fn: () => unknown): void
}

type OidcModule = typeof import('oidc-provider')

let loading: Promise<OidcModule> | undefined

/**
 * Runs `load` with oidc-provider's own console notices dropped: on Node 20 it prints
 * "Unsupported runtime" when imported (it supports the LTS lines from 22), and warns about its
 * development defaults; neither is about keyhole, so they stay out of the test output.
 */
async function quietly<T>(load: () => T | Promise<T>): Promise<T> {
  const { warn, info } = console
  const drop =
    (write: (...args: unknown[]) => void) =>
    (...args: unknown[]) =>
      typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')
        ? undefined
        : write(...args)
  console.warn = drop(warn)
  console.info = drop(info)
  try {
    return await load()
  } finally {
    console.warn = warn
    console.info = info
  }
}

function clients(algorithms: readonly SigningAlgorithm[]) {
  // ID tokens signed with the client's algorithm too (the provider refuses a client whose ID
  // token algorithm has no key).
  return algorithms.flatMap((alg) => [
    {
      client_id: `service-${alg}`,
      client_secret: SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: alg,
    },
    {
      // Issued access tokens for two days: longer than keyhole's default lifetime bound.
      client_id: `longlived-${alg}`,
      client_secret: SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: alg,
    },
    {
      client_id: `webapp-${alg}`,
      client_secret: SECRET,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: alg,
    },
  ])
}

const accessTokenTTL = (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
  token.resourceServer?.accessTokenTTL ?? 300

/**
 * The provider's configuration: resource indicators with JWT access tokens for {@link API}, signed
 * with the client's algorithm; `permissions` in the user's access tokens.
 */
function configuration(keys: readonly SigningKey[], algorithms: readonly SigningAlgorithm[]) {
  return {
    clients: clients(algorithms),
    jwks: { keys },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Stated, so that the provider does not print a notice for each default it falls back on; an
    // access token lives as long as its resource server says.
    ttl: {
      AccessToken: accessTokenTTL,
      AuthorizationCode: 60,
      ClientCredentials: accessTokenTTL,
      Grant: 300,
      IdToken: 300,
      Interaction: 300,
      Session: 300,
    },
    findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id }) }),
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API,
        useGrantedResource: () => true,
        getResourceServerInfo: (
          _ctx: unknown,
          _resource: string,
          client: { clientId: string },
        ) => ({
          scope: API_SCOPES,
          audience: API,
          accessTokenTTL: client.clientId.startsWith('longlived-') ? 2 * 86_400 : 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: client.clientId.slice(client.clientId.indexOf('-') + 1) } },
        }),
      },
    },
    extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) =>
      token.accountId === undefined
        ? undefined
        : { permissions: [{ group: GROUP, role: 'moderator' }] },
  }
}

/** Finishes a login interaction as a login page would: the user logs in and consents. */
async function finishInteraction(provider: Provider, req: IncomingMessage, res: ServerResponse) {
  const details = await provider.interactionDetails(req, res)
  const grant = new provider.Grant({
    accountId: ACCOUNT,
    clientId: String(details.params.client_id),
  })
  grant.addOIDCScope('openid')
  const requested = String(details.params.scope)
    .split(' ')
    .filter((scope) => scope !== 'openid')
  grant.addResourceScope(API, requested.join(' '))
  const grantId = await grant.save()
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: ACCOUNT }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  )
}

/**
 * Starts the provider on 127.0.0.1 with `keys` and clients for `algorithms`; closed at teardown.
 */
export async function startProvider(
  t: Teardown,
  keys: readonly SigningKey[],
  algorithms: readonly SigningAlgorithm[],
): Promise<IdentityProvider> {
  loading ??= quietly(() => import('oidc-provider'))
  const { Provider } = await loading
  let provider: Provider
  let handle: ReturnType<Provider['callback']>
  let jwksFetches = 0
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      finishInteraction(provider, req, res).catch((error: unknown) => {
        res.statusCode = 500
        res.end(String(error))
      })
      return
    }
    if (req.url === '/jwks') jwksFetches++
    handle(req, res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const serve = async (keySet: readonly SigningKey[]) => {
    provider = await quietly(() => new Provider(issuer, configuration(keySet, algorithms)))
    handle = provider.callback()
  }
  await serve(keys)
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    jwks_uri: string
    token_endpoint: string
    authorization_endpoint: string
  }

  async function token(parameters: Record<string, string>): Promise<Record<string, string>> {
    const response = await fetch(discovery.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_secret: SECRET, ...parameters }),
    })
    const body = (await response.json()) as Record<string, string>
    if (response.status !== 200) throw new Error(`token endpoint: ${JSON.stringify(body)}`)
    return body
  }

  return {
    issuer,
    jwksUri: discovery.jwks_uri,
    get jwksFetches() {
      return jwksFetches
    },
    async clientCredentials(alg, scope = 'forum:read', client = 'service') {
      const body = await token({
        grant_type: 'client_credentials',
        client_id: `${client}-${alg}`,
        scope,
        resource: API,
      })
      return body.access_token as string
    },
    async authorizationCode(alg, scope = API_SCOPES) {
      const clientId = `webapp-${alg}`
      const verifier = randomBytes(32).toString('base64url')
      const jar = new Map<string, string>()
      let url = `${discovery.authorization_endpoint}?${new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        scope: `openid ${scope}`,
        redirect_uri: REDIRECT_URI,
        resource: API,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        state: randomBytes(8).toString('hex'),
        nonce: randomBytes(8).toString('hex'),
      })}`
      // authorize → the login interaction → back to authorize → the client's redirect URI.
      for (let hop = 0; hop < 6; hop++) {
        const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
        const response = await fetch(url, { redirect: 'manual', headers: { cookie } })
        for (const set of response.headers.getSetCookie()) {
          const pair = set.slice(0, set.indexOf(';'))
          jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1))
        }
        const location = response.headers.get('location')
        if (location === null) {
          throw new Error(`authorization: ${response.status} ${await response.text()}`)
        }
        const next = new URL(location, issuer)
        const code = next.searchParams.get('code')
        if (next.href.startsWith(REDIRECT_URI) && code !== null) {
          const body = await token({
            grant_type: 'authorization_code',
            client_id: clientId,
            code,
            redirect_uri: REDIRECT_URI,
            code_verifier: verifier,
            resource: API,
          })
          return { accessToken: body.access_token as string, idToken: body.id_token as string }
        }
        url = next.href
      }
      throw new Error('authorization: too many redirects')
    },
    rotate: serve,
  }
}
