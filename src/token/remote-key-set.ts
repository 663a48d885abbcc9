/**
 * A remote JSON Web Key Set: jose's `createRemoteJWKSet` (cached, refetched on an unknown `kid`
 * after the cooldown, time-limited) plus two things jose leaves to the application:
 *
 * - a fetched key is held to the rules a configured key is: an RSA key with a public exponent
 *   below 3 is never used (with e = 1 the "signature" is the padded hash, so anyone can forge one;
 *   jose imports such a key);
 * - a key set larger than `MAX_METADATA_BYTES` (256 KiB) is refused unread past that size, as a
 *   failed fetch (jose reads any size);
 * - a failing endpoint is not hammered: after a failed fetch (network error, timeout, non-200),
 *   no fetch is made for `min(cooldownDuration, 5 s)`, and requests that need one answer 503 at
 *   once. Without this every request arriving while the key server is down costs it a request;
 * - a key that leaves the set takes its verified tokens along: each refetch that drops a key the
 *   previous set held bumps `generation`, and the verified-token cache trusts no entry made under
 *   an older generation (a cache hit also refetches a set older than `cacheMaxAge` first, as a
 *   lookup would).
 */
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  jwksCache,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
} from 'jose'
import { TokenError } from '../errors.ts'
import { readBounded } from './bounded-body.ts'

export interface RemoteKeySetOptions {
  readonly cooldownDuration: number
  readonly cacheMaxAge: number
  readonly timeoutDuration: number
  /**
   * Several RSA algorithms are allowed: an RSA key without `alg` is bound to none of them, so it
   * is dropped from every fetched set (jose would let it verify each).
   */
  readonly rsaKeysNeedAlg?: boolean
}

/** A key set whose verifications a cache may hold, as far as the cache needs to know. */
export interface KeySetState {
  /**
   * Bumped whenever the set loses a key (or is invalidated): a verification made under an older
   * generation is not trusted again.
   */
  readonly generation: number
  /** True when the set must be refetched before a cached verification is trusted again. */
  readonly stale: boolean
  /** Refetches the set (joining a fetch in flight). @throws TokenError `KH_KEYS_UNAVAILABLE` */
  refresh(): Promise<void> | void
  /** Forgets the set: the next lookup or cache hit refetches it first. */
  invalidate(): void
}

/** The lookup of a remote key set, with its state. */
export interface RemoteKeySet extends KeySetState {
  (header: JWSHeaderParameters): Promise<CryptoKey>
}

/** The longest back-off after a failed fetch, in milliseconds. */
export const MAX_RETRY_DELAY = 5000

class RecentFailure extends Error {
  override readonly name = 'RecentFailure'
}

/** The key set endpoint answered another status than 200 (jose would say only that). */
export class KeySetStatus extends Error {
  override readonly name = 'KeySetStatus'
  constructor(readonly status: number) {
    super(`the key set endpoint answered ${status}`)
  }
}

/** The exponent of an RSA CryptoKey (big-endian bytes), or undefined for other key types. */
function rsaExponent(key: CryptoKey): bigint | undefined {
  const { publicExponent } = key.algorithm as { publicExponent?: Uint8Array }
  if (publicExponent === undefined) return undefined
  let value = 0n
  for (const byte of publicExponent) value = (value << 8n) | BigInt(byte)
  return value
}

/** What makes a key the same key: its id, its material and what it may be used for. */
function identity(jwk: JWK): string {
  const { kid, kty, crv, x, y, n, e, alg, use, key_ops } = jwk
  return JSON.stringify([kid, kty, crv, x, y, n, e, alg, use, key_ops])
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
): RemoteKeySet {
  const { rsaKeysNeedAlg = false, ...joseOptions } = options
  const retryDelay = Math.min(options.cooldownDuration, MAX_RETRY_DELAY)
  let retryAt = 0
  // Whether the last fetched set held an RSA key without `alg` that was dropped: the reason of a
  // token that finds no key then says why.
  let droppedRsa = false
  const guardedFetch = async (input: string, init: RequestInit): Promise<Response> => {
    if (Date.now() < retryAt) throw new RecentFailure('the key set endpoint failed recently')
    try {
      const response = await fetchImpl(input, init)
      if (response.status !== 200) {
        await response.body?.cancel()
        throw new KeySetStatus(response.status)
      }
      const text = await readBounded(response)
      return rsaKeysNeedAlg ? withoutUnboundRsaKeys(text) : new Response(text, { status: 200 })
    } catch (error) {
      retryAt = Date.now() + retryDelay
      throw error
    }
  }
  const withoutUnboundRsaKeys = (text: string): Response => {
    let set: unknown
    try {
      set = JSON.parse(text)
    } catch {
      // jose reports it (KH_KEYS_UNAVAILABLE).
      return new Response(text, { status: 200 })
    }
    const keys = (set as { keys?: unknown } | null)?.keys
    if (!Array.isArray(keys)) return new Response(text, { status: 200 })
    const bound = keys.filter((jwk: JWK | null) => !(jwk?.kty === 'RSA' && jwk.alg === undefined))
    droppedRsa = bound.length < keys.length
    return new Response(JSON.stringify({ ...(set as object), keys: bound }), { status: 200 })
  }
  let held = new Set<string>()
  let generation = 0
  let invalidated = false
  // jose stores every key set it applies in this object, synchronously as it applies it: the
  // setter compares it with the previous set, whoever triggered the fetch.
  let current: JSONWebKeySet | undefined
  const applied = {
    uat: 0,
    get jwks(): JSONWebKeySet | undefined {
      return current
    },
    set jwks(jwks: JSONWebKeySet) {
      const next = new Set(jwks.keys.map(identity))
      for (const key of held) {
        if (!next.has(key)) {
          generation++
          break
        }
      }
      current = jwks
      held = next
    },
  }
  const remote = createRemoteJWKSet(url, {
    ...joseOptions,
    [customFetch]: guardedFetch,
    [jwksCache]: applied as unknown as Record<string, never>,
  })

  const refresh = async (): Promise<void> => {
    try {
      await remote.reload()
    } catch (error) {
      throw new TokenError('KH_KEYS_UNAVAILABLE', { cause: error })
    }
    invalidated = false
  }

  // Keys jose imported are reused, so each is checked once.
  const checked = new WeakSet<CryptoKey>()
  const lookup = async (header: JWSHeaderParameters): Promise<CryptoKey> => {
    if (invalidated) await refresh()
    let key: CryptoKey
    try {
      key = await remote(header)
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) {
        const reason =
          droppedRsa && /^[RP]S/.test(String(header.alg))
            ? 'kid: no key matches; the key set holds RSA keys without alg, unused while several RSA algorithms are allowed'
            : 'kid: no key of the key set matches the kid and alg'
        throw new TokenError('KH_TOKEN_KEY_UNKNOWN', { cause: error, reason })
      }
      if (error instanceof errors.JWKSMultipleMatchingKeys) {
        throw new TokenError('KH_TOKEN_KEY_UNKNOWN', {
          cause: error,
          reason: 'kid: several keys of the key set match the kid and alg',
        })
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
          reason: 'kid: the matching RSA key has an unsafe public exponent',
        })
      }
      checked.add(key)
    }
    return key
  }
  return Object.defineProperties(lookup, {
    generation: { get: () => generation },
    stale: { get: () => invalidated || !remote.fresh },
    refresh: { value: refresh },
    invalidate: {
      value() {
        invalidated = true
        generation++
      },
    },
  }) as RemoteKeySet
}
