/**
 * The per-request path from a request's token to a capability: extract → size check → cache →
 * precheck → verify → revocation → derive. Everything that can be done once (option validation, key
 * import, role tables) is done by `createAuthenticator`.
 */
import type { JWTPayload } from 'jose'
import type { Capability } from '../capability/capability.ts'
import { deriveCapability, resolveCapabilityOptions } from '../capability/derive.ts'
import { ServiceUnavailable, TokenError } from '../errors.ts'
import {
  parseKeyholeOptions,
  resolveTokenOptions,
  type KeyholeOptions,
  type ParsedKeyholeOptions,
} from '../options.ts'
import { extractToken, type TokenSource } from './extract-token.ts'
import { createKeySet } from './keys.ts'
import { createPrecheck } from './precheck-token.ts'
import { TokenCache, type CacheCounters } from './token-cache.ts'
import { tokenVerifier } from './verify-token.ts'

export type { TokenSource }

/** What a verified token grants, and how many permission entries named unknown roles. */
export interface AuthenticationResult {
  capability: Capability
  ignored: number
}

export interface Authenticator {
  /** The realm of `WWW-Authenticate`. */
  readonly realm: string
  /** The cookie that may carry the token, if configured. */
  readonly cookieName: string | undefined
  /**
   * Verifies the request's token and derives its capability.
   * @throws TokenError (401, or 503 `KH_KEYS_UNAVAILABLE`) with `realm` set;
   *   ServiceUnavailable (503) when `isRevoked` fails
   */
  authenticate(source: TokenSource): Promise<AuthenticationResult>
  /**
   * Forgets every verified token: each is checked again (signature and key lookup) on its next
   * request, and with `jwksUrl` the key set is refetched first. Call it when a key your `getKey`
   * returned is withdrawn; with `jwksUrl` keyhole does it by itself when a refetch drops a key.
   *
   * @example
   * keys.delete(kid) // your own key store, read by getKey
   * authenticator.invalidate()
   */
  invalidate(): void
  /** Drops the verified-token cache. */
  close(): void
}

interface Verified {
  readonly payload: Readonly<JWTPayload>
  readonly result: Readonly<AuthenticationResult>
  /** The key set's generation when the token was verified. */
  readonly generation: number
}

/** The moment (ms) a verified payload stops being valid: `exp`, or earlier by `maxTokenAge`. */
function deadlineOf(payload: JWTPayload, maxTokenAge: number | undefined): number {
  let deadline = typeof payload.exp === 'number' ? payload.exp * 1000 : Number.NaN
  if (maxTokenAge !== undefined && typeof payload.iat === 'number') {
    deadline = Math.min(deadline, (payload.iat + maxTokenAge) * 1000)
  }
  return deadline
}

/**
 * Validates the options once (zod; the caller's object is not mutated), imports the keys once and
 * returns the authenticator.
 *
 * @example
 * const authenticator = await createAuthenticator({
 *   secret: process.env.JWT_SECRET, algorithms: ['HS256'], issuer: 'https://id.example', audience: 'api',
 * })
 * const { capability } = await authenticator.authenticate({ authorization: request.headers.authorization })
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the bad option
 */
export async function createAuthenticator(options: KeyholeOptions): Promise<Authenticator> {
  return authenticatorOf(parseKeyholeOptions(options))
}

/** {@link createAuthenticator} for options already parsed (the adapters parse them once). */
export async function authenticatorOf(
  parsed: ParsedKeyholeOptions,
  counters?: CacheCounters,
): Promise<Authenticator> {
  const resolved = resolveTokenOptions(parsed)
  const capabilityOptions = resolveCapabilityOptions(parsed.capability)
  const keys = await createKeySet(parsed)
  const cache =
    resolved.cache === false
      ? undefined
      : new TokenCache<Verified>(resolved.cache.max, Date.now, counters)
  const { realm, maxTokenBytes, isRevoked, maxTokenAge } = resolved
  const precheck = createPrecheck(maxTokenBytes, new Set(resolved.algorithms))
  const verifyToken = tokenVerifier(resolved)

  /** Derives the capability of a payload jose has just verified, freezes it and caches it. */
  function accept(token: string, payload: Readonly<JWTPayload>, generation: number): Verified {
    const result = Object.freeze(deriveCapability(payload, capabilityOptions))
    const verified = Object.freeze({ payload, result, generation })
    cache?.set(token, verified, deadlineOf(payload, maxTokenAge))
    return verified
  }

  // The cold path awaits the verifier directly: each async function nested between them would
  // cost every request a promise and more turns of the microtask queue.
  async function authenticate(source: TokenSource): Promise<AuthenticationResult> {
    try {
      const token = extractToken(source)
      // Before the cache lookup: a huge string should cost nothing, not a hash.
      if (token.length > maxTokenBytes) throw new TokenError('KH_TOKEN_TOO_LARGE')
      // A cache hit is a byte-identical token that already passed every check below, with a key
      // the key set still holds: a set that lost a key (or was invalidated) since has another
      // generation.
      let verified = cache?.get(token)
      if (verified !== undefined) {
        if (keys.stale) await keys.refresh()
        if (verified.generation !== keys.generation) {
          ;(cache as TokenCache<Verified>).delete(token)
          verified = undefined
        }
      }
      if (verified === undefined) {
        // Read before verifying: a key withdrawn meanwhile leaves this entry behind the set.
        const generation = keys.generation
        precheck(token)
        verified = accept(token, Object.freeze(await verifyToken(token, keys.key)), generation)
      }
      const { payload, result } = verified
      if (isRevoked !== undefined && (await revoked(payload))) {
        throw new TokenError('KH_TOKEN_REVOKED')
      }
      return result
    } catch (error) {
      if (error instanceof TokenError) error.realm = realm
      throw error
    }
  }

  async function revoked(payload: Readonly<JWTPayload>): Promise<boolean> {
    try {
      return (await (isRevoked as NonNullable<typeof isRevoked>)(payload)) !== false
    } catch (error) {
      // The hook could not answer: refuse rather than let a possibly revoked token through.
      throw new ServiceUnavailable({ cause: error })
    }
  }

  return Object.freeze({
    realm,
    cookieName: resolved.cookie,
    authenticate,
    invalidate() {
      keys.invalidate()
      cache?.clear()
    },
    close: () => cache?.clear(),
  })
}
