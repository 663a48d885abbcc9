/**
 * The verification keys, imported once at registration. One key serves one algorithm: key metadata
 * jose would ignore (`use: 'enc'`, another `alg`), short HMAC secrets, small RSA moduli, exponent 1
 * and secret/public mixes are refused here, with a message naming the option.
 */
import { createPublicKey, KeyObject, webcrypto, type JsonWebKey } from 'node:crypto'
import { errors, importJWK, type CryptoKey, type JWK, type JWSHeaderParameters } from 'jose'
import { types } from 'node:util'
import { ConfigurationError, TokenError } from '../errors.ts'
import type { Algorithm, KeyholeOptions, VerificationKey } from '../options.ts'
import { discoverJwksUrl, discoveryIssuer, isSecureUrl } from './discovery.ts'
import { KeySetStatus, remoteKeySet, type KeySetState } from './remote-key-set.ts'

/** A key for every token, or a lookup per token (remote key set, user function, several HS algs). */
export type KeyResolver =
  VerificationKey | ((header: JWSHeaderParameters, token: string) => Promise<VerificationKey>)

/** The configured keys: what verifies a token, and what tells the cache to stop trusting it. */
export interface KeySet extends KeySetState {
  readonly key: KeyResolver
}

/**
 * Keys keyhole cannot watch (a secret, one public key, a `getKey` function): they change only
 * when the application says so, through `invalidate()`.
 */
function fixedKeySet(key: KeyResolver): KeySet {
  let generation = 0
  return {
    key,
    get generation() {
      return generation
    },
    stale: false,
    /* c8 ignore next: never called, a fixed key set is never stale */
    refresh: () => {},
    invalidate() {
      generation++
    },
  }
}

type KeyOptions = Pick<
  KeyholeOptions,
  'secret' | 'publicKey' | 'jwksUrl' | 'jwks' | 'getKey' | 'algorithms' | 'discovery' | 'issuer'
>

type KeySource = 'secret' | 'publicKey' | 'jwksUrl' | 'getKey' | 'discovery'

function invalid(message: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message, cause)
}

const hashBytes = { HS256: 32, HS384: 48, HS512: 64 } as const
type HmacAlgorithm = keyof typeof hashBytes

function isHmac(alg: Algorithm): alg is HmacAlgorithm {
  return alg.startsWith('HS')
}

async function importSecret(
  secret: string | Uint8Array,
  algorithms: readonly HmacAlgorithm[],
): Promise<KeyResolver> {
  // A copy: the caller may zero or reuse their buffer.
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Uint8Array.from(secret)
  const keys = new Map<string, CryptoKey>()
  for (const alg of algorithms) {
    // Long enough: assertKeyOptions refused a shorter secret. Imported once as a non-extractable CryptoKey bound to its hash, so jose neither re-imports
    // it per request nor can use it with another HMAC.
    const key = await webcrypto.subtle.importKey(
      'raw',
      bytes,
      { name: 'HMAC', hash: `SHA-${alg.slice(2)}` },
      false,
      ['verify'],
    )
    keys.set(alg, key as CryptoKey)
  }
  bytes.fill(0)
  if (keys.size === 1) return [...keys.values()][0] as CryptoKey
  // jose checks the allowlist before asking for a key, so `alg` is always one of these.
  return async (header) => keys.get(header.alg as string) as CryptoKey
}

function toKeyObject(
  publicKey: NonNullable<KeyholeOptions['publicKey']>,
  algorithms: readonly Algorithm[],
): KeyObject {
  if (typeof publicKey === 'string') {
    if (/PRIVATE KEY/.test(publicKey)) throw invalid('publicKey: a private key was given')
    try {
      return createPublicKey(publicKey)
    } catch (error) {
      throw invalid('publicKey: not a PEM public key', error)
    }
  }
  if (publicKey instanceof KeyObject || types.isCryptoKey(publicKey)) {
    const key =
      publicKey instanceof KeyObject ? publicKey : KeyObject.from(publicKey as webcrypto.CryptoKey)
    if (key.type !== 'public') throw invalid(`publicKey: a ${key.type} key was given`)
    return key
  }
  const jwk = publicKey as JWK
  if (jwk.kty === 'oct' || 'd' in jwk) throw invalid('publicKey: the JWK is not a public key')
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalid('publicKey: the JWK is not for sig')
  if (jwk.alg !== undefined && !algorithms.includes(jwk.alg as Algorithm)) {
    throw invalid(`publicKey: the JWK's alg is not ${algorithms.join(' or ')}`)
  }
  if (jwk.key_ops !== undefined && !jwk.key_ops.includes('verify')) {
    throw invalid('publicKey: the JWK key_ops do not include verify')
  }
  try {
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
  } catch (error) {
    throw invalid('publicKey: not a valid JWK', error)
  }
}

const curves: Record<string, string> = {
  ES256: 'prime256v1',
  ES384: 'secp384r1',
  ES512: 'secp521r1',
}

function assertKeyFits(key: KeyObject, alg: Algorithm): void {
  const type = key.asymmetricKeyType
  // Always set for an asymmetric public key (the only kind toKeyObject returns).
  const details = key.asymmetricKeyDetails as NonNullable<KeyObject['asymmetricKeyDetails']>
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    if (type !== 'rsa') throw invalid(`publicKey: ${alg} needs an RSA key`)
    if ((details.modulusLength as number) < 2048) {
      throw invalid('publicKey: RSA keys need a modulus of at least 2048 bits')
    }
    // e = 1 makes the signature equal to the padded hash: anyone can forge one.
    if ((details.publicExponent as bigint) < 3n) {
      throw invalid('publicKey: the RSA public exponent is unsafe')
    }
  } else if (alg.startsWith('ES')) {
    if (type !== 'ec' || details.namedCurve !== curves[alg]) {
      throw invalid(`publicKey: ${alg} needs an EC key on curve ${curves[alg]}`)
    }
  } else if (type !== 'ed25519') {
    throw invalid(`publicKey: ${alg} needs an Ed25519 key`)
  }
}

async function importPublicKey(
  publicKey: NonNullable<KeyholeOptions['publicKey']>,
  algorithms: readonly Algorithm[],
): Promise<KeyResolver> {
  // EdDSA and Ed25519 are two names of one algorithm (below): one key serves both.
  if (algorithms.length !== 1 && !(algorithms.length === 2 && algorithms.every(isEd25519))) {
    throw invalid('publicKey: a single public key serves exactly one algorithm; list one')
  }
  const alg = algorithms[0] as Algorithm
  const key = toKeyObject(publicKey, algorithms)
  assertKeyFits(key, alg)
  const jwk = key.export({ format: 'jwk' }) as JWK
  return (await importJWK({ ...jwk, alg }, alg)) as CryptoKey
}

/**
 * `EdDSA` (RFC 8037) and `Ed25519` (RFC 9864's fully specified name) name the same signature with
 * the same Ed25519 key (jose verifies no Ed448): a key serving both is still one key for one
 * primitive.
 */
function isEd25519(alg: Algorithm): boolean {
  return alg === 'EdDSA' || alg === 'Ed25519'
}

const isRsa = (alg: Algorithm) => alg.startsWith('RS') || alg.startsWith('PS')

/** The URL of `jwksUrl`, checked: keys fetched in clear text could be swapped in transit. */
function jwksUrlOf(jwksUrl: string | URL): URL {
  let url: URL
  try {
    url = new URL(jwksUrl)
  } catch (error) {
    throw invalid('jwksUrl: not a URL', error)
  }
  if (!isSecureUrl(url)) throw invalid('jwksUrl: must be https (http only on a loopback address)')
  return url
}

function remoteKeys(
  url: URL,
  jwks: KeyholeOptions['jwks'],
  algorithms: readonly Algorithm[],
): KeySet {
  // A key is bound to one algorithm by its `alg` (jose never picks a key whose `alg` differs from
  // the token's) or by its type: an EC key by its curve, an Ed25519 key by being one. An RSA key
  // without `alg` is not bound when several RSA algorithms are listed (jose would let it verify
  // RS256 and PS256 alike): then it is never used.
  const remote = remoteKeySet(url, {
    cooldownDuration: jwks?.cooldownDuration ?? 30_000,
    cacheMaxAge: jwks?.cacheMaxAge ?? 600_000,
    timeoutDuration: jwks?.timeoutDuration ?? 5000,
    rsaKeysNeedAlg: algorithms.filter(isRsa).length > 1,
  })
  return {
    key: remote,
    get generation() {
      return remote.generation
    },
    get stale() {
      return remote.stale
    },
    refresh: remote.refresh,
    invalidate: remote.invalidate,
  }
}

/**
 * Fetches the key set once before serving, so that a wrong URL or a broken key set is seen at
 * start-up, not at the first request. A provider that is down (no connection, a timeout, 5xx or
 * 429) does not stop start-up: the set is fetched again when a token needs it (503
 * `KH_KEYS_UNAVAILABLE` until the provider answers; docs/identity-providers.md#start-up).
 * @throws ConfigurationError `KH_JWKS_FAILED` naming the URL and the fault, for any other answer
 * (another status, not a JSON Web Key Set, too large)
 */
async function fetchAtStart(keys: KeySet, url: URL): Promise<void> {
  try {
    await keys.refresh()
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause
    const down =
      cause instanceof TypeError ||
      cause instanceof errors.JWKSTimeout ||
      (cause instanceof KeySetStatus && (cause.status >= 500 || cause.status === 429))
    if (down) return
    throw new ConfigurationError(
      'KH_JWKS_FAILED',
      `the key set ${url} could not be fetched at start-up: ${(cause as Error).message}`,
      cause,
    )
  }
}

function userKey(getKey: NonNullable<KeyholeOptions['getKey']>): KeyResolver {
  return async (header, token) => {
    let key: VerificationKey | undefined
    try {
      key = await getKey(header, token)
    } catch (error) {
      if (error instanceof TokenError) throw error
      throw new TokenError('KH_KEYS_UNAVAILABLE', { cause: error })
    }
    if (key === undefined || key === null) throw new TokenError('KH_TOKEN_KEY_UNKNOWN')
    return key
  }
}

/** Bytes of a secret, as jose will see them (a string as UTF-8). */
const secretLength = (secret: string | Uint8Array) =>
  typeof secret === 'string' ? Buffer.byteLength(secret, 'utf8') : secret.length

/**
 * Every check of the key options that needs no import, synchronously: exactly one key source, one
 * that fits the algorithms, and an HMAC secret at least as long as each HS algorithm's hash. Only
 * the import itself (a PEM or JWK that does not parse, a weak RSA key) is left to
 * {@link createKeySet}. Returns the source.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the option
 */
export function assertKeyOptions(options: KeyOptions): KeySource {
  const { algorithms } = options
  const hmac = algorithms.filter(isHmac)
  if (hmac.length > 0 && hmac.length < algorithms.length) {
    throw invalid('algorithms: HS and asymmetric algorithms cannot be mixed')
  }
  const sources = (['secret', 'publicKey', 'jwksUrl', 'getKey', 'discovery'] as const).filter(
    (name) => (name === 'discovery' ? options.discovery === true : options[name] !== undefined),
  )
  if (sources.length !== 1) {
    throw invalid(
      `secret, publicKey, jwksUrl, getKey, discovery: exactly one key source is required (got ${sources.length === 0 ? 'none' : sources.join(', ')})`,
    )
  }
  const source = sources[0] as KeySource
  if (options.jwks !== undefined && source !== 'jwksUrl' && source !== 'discovery') {
    throw invalid('jwks: only with jwksUrl or discovery')
  }
  if (source === 'discovery') discoveryIssuer(options.issuer)
  if (source === 'secret') {
    if (hmac.length === 0) throw invalid('secret: only with HS algorithms')
    const length = secretLength(options.secret as string | Uint8Array)
    for (const alg of hmac) {
      if (length < hashBytes[alg]) {
        throw invalid(`secret: ${alg} needs a secret of at least ${hashBytes[alg]} bytes`)
      }
    }
  } else if (source !== 'getKey' && hmac.length > 0) {
    throw invalid(`${source}: HS algorithms need a secret`)
  }
  return source
}

/**
 * Checks the key source against the algorithms ({@link assertKeyOptions}) and imports it once.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the option
 */
export async function createKeySet(options: KeyOptions): Promise<KeySet> {
  const { algorithms } = options
  const hmac = algorithms.filter(isHmac)
  const source = assertKeyOptions(options)
  if (source === 'jwksUrl' || source === 'discovery') {
    const url =
      source === 'jwksUrl'
        ? jwksUrlOf(options.jwksUrl as string | URL)
        : await discoverJwksUrl(options.issuer as string, options.jwks?.timeoutDuration ?? 5000)
    const keys = remoteKeys(url, options.jwks, algorithms)
    await fetchAtStart(keys, url)
    return keys
  }
  if (source === 'getKey') {
    return fixedKeySet(userKey(options.getKey as NonNullable<KeyOptions['getKey']>))
  }
  if (source === 'secret') {
    return fixedKeySet(await importSecret(options.secret as string | Uint8Array, hmac))
  }
  const publicKey = options.publicKey as NonNullable<KeyOptions['publicKey']>
  return fixedKeySet(await importPublicKey(publicKey, algorithms))
}
