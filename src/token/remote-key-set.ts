/**
 * A remote JSON Web Key Set: jose's `createRemoteJWKSet` (cached, refetched on an unknown `kid`
 * after the cooldown, time-limited) plus two things jose leaves to the application:
 *
 * - a fetched key is held to the rules a configured key is: an RSA key with a public exponent
 *   below 3 is never used (with e = 1 the "signature" is the padded hash, so anyone can forge one;
 *   jose imports such a key);
 * - a failing endpoint is not hammered: after a failed fetch (network error, timeout, non-200),
 *   no fetch is made for `min(cooldownDuration, 5 s)`, and requests that need one answer 503 at
 *   once. Without this every request arriving while the key server is down costs it a request.
 */
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  type CryptoKey,
  type JWSHeaderParameters,
} from 'jose'
import { TokenError } from '../errors.ts'

export interface RemoteKeySetOptions {
  readonly cooldownDuration: number
  readonly cacheMaxAge: number
  readonly timeoutDuration: number
}

/** The longest back-off after a failed fetch, in milliseconds. */
export const MAX_RETRY_DELAY = 5000

class RecentFailure extends Error {
  override readonly name = 'RecentFailure'
}

/** The exponent of an RSA CryptoKey (big-endian bytes), or undefined for other key types. */
function rsaExponent(key: CryptoKey): bigint | undefined {
  const { publicExponent } = key.algorithm as { publicExponent?: Uint8Array }
  if (publicExponent === undefined) return undefined
  let value = 0n
  for (const byte of publicExponent) value = (value << 8n) | BigInt(byte)
  return value
}

/**
 * The key lookup for `url`. Throws `KH_TOKEN_KEY_UNKNOWN` (401) when no key (or more than one)
 * matches the token's `kid` and `alg`, or the matching key is unsafe; `KH_KEYS_UNAVAILABLE` (503)
 * when the key set cannot be fetched.
 */
export function remoteKeySet(
  url: URL,
  options: RemoteKeySetOptions,
  fetchImpl: typeof fetch = fetch,
): (header: JWSHeaderParameters) => Promise<CryptoKey> {
  const retryDelay = Math.min(options.cooldownDuration, MAX_RETRY_DELAY)
  let retryAt = 0
  const guardedFetch = async (input: string, init: RequestInit): Promise<Response> => {
    if (Date.now() < retryAt) throw new RecentFailure('the key set endpoint failed recently')
    try {
      const response = await fetchImpl(input, init)
      if (response.status !== 200) retryAt = Date.now() + retryDelay
      return response
    } catch (error) {
      retryAt = Date.now() + retryDelay
      throw error
    }
  }
  const remote = createRemoteJWKSet(url, { ...options, [customFetch]: guardedFetch })
  // Keys jose imported are reused, so each is checked once.
  const checked = new WeakSet<CryptoKey>()
  return async (header) => {
    let key: CryptoKey
    try {
      key = await remote(header)
    } catch (error) {
      if (
        error instanceof errors.JWKSNoMatchingKey ||
        error instanceof errors.JWKSMultipleMatchingKeys
      ) {
        throw new TokenError('KH_TOKEN_KEY_UNKNOWN', { cause: error })
      }
      // Timeout, network failure, non-200, invalid JSON, back-off: keyhole cannot decide, so it
      // refuses.
      throw new TokenError('KH_KEYS_UNAVAILABLE', { cause: error })
    }
    if (!checked.has(key)) {
      const exponent = rsaExponent(key)
      if (exponent !== undefined && exponent < 3n) {
        throw new TokenError('KH_TOKEN_KEY_UNKNOWN', {
          cause: new Error('the key set holds an RSA key with an unsafe public exponent'),
        })
      }
      checked.add(key)
    }
    return key
  }
}
