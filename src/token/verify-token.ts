/**
 * Signature and claims, by jose's `jwtVerify`, then what jose leaves to the application: negative
 * times, the lifetime bound and ID tokens. jose checks the signature before the claims, so a forged
 * expired token reports a signature failure. Every jose error becomes one of ours, with jose's kept
 * as `cause` and the check that failed as `reason` (for the denial log); nothing here ever accepts
 * on an error.
 */
import { errors, jwtVerify, type JWTPayload } from 'jose'
import { TokenError } from '../errors.ts'
import type { ResolvedTokenOptions } from '../options.ts'
import type { KeyResolver } from './keys.ts'

type VerifyOptions = Pick<
  ResolvedTokenOptions,
  | 'algorithms'
  | 'issuer'
  | 'audience'
  | 'clockTolerance'
  | 'maxTokenAge'
  | 'maxTokenLifetime'
  | 'typ'
  | 'requiredClaims'
>

/** What the configuration expected, to word a claim's reason (configuration, never token data). */
type Expected = Pick<VerifyOptions, 'issuer' | 'typ'>

const withoutSlash = (value: string) => (value.endsWith('/') ? value.slice(0, -1) : value)

/** Why `iss` failed, with a hint when only a trailing `/` differs (the commonest slip). */
function issuerReason(payload: unknown, issuer: Expected['issuer']): string {
  // jose checks `iss` only against a configured issuer, and hands over the payload it checked.
  const iss = (payload as { iss?: unknown }).iss
  const configured = typeof issuer === 'string' ? [issuer] : (issuer as readonly string[])
  const slash =
    typeof iss === 'string' && configured.some((value) => withoutSlash(value) === withoutSlash(iss))
  return slash
    ? 'iss: not the configured issuer; they differ only by a trailing "/"'
    : 'iss: not the configured issuer'
}

/** The reason of a failed claim check, by claim: what was wrong, never the value. */
function claimReason(error: errors.JWTClaimValidationFailed, expected: Expected): string {
  const { claim, reason } = error
  if (reason === 'missing') return `${claim}: missing`
  if (reason === 'invalid') return `${claim}: not a number`
  switch (claim) {
    case 'iss':
      return issuerReason(error.payload, expected.issuer)
    case 'aud':
      return 'aud: does not contain the configured audience'
    case 'typ':
      return `typ: the header is not ${expected.typ} (an ID token or another kind of JWT)`
    case 'nbf':
      return 'nbf: not valid yet'
    case 'iat':
      return 'iat: in the future (maxTokenAge)'
    default:
      return `${claim}: check failed`
  }
}

/** Maps a jose (or key lookup) error to a TokenError; a TokenError passes through. */
export function toTokenError(
  error: unknown,
  expected: Expected = { issuer: undefined, typ: undefined },
): TokenError {
  if (error instanceof TokenError) return error
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError('KH_TOKEN_SIGNATURE', {
      cause: error,
      reason: 'signature: does not verify with the key',
    })
  }
  if (error instanceof errors.JWTExpired) {
    const reason = error.claim === 'iat' ? 'iat: older than maxTokenAge' : 'exp: in the past'
    return new TokenError('KH_TOKEN_EXPIRED', { cause: error, reason })
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    return new TokenError('KH_TOKEN_CLAIM', { cause: error, reason: claimReason(error, expected) })
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new TokenError('KH_TOKEN_ALGORITHM', { cause: error, reason: 'alg: not in algorithms' })
  }
  if (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return new TokenError('KH_TOKEN_KEY_UNKNOWN', { cause: error })
  }
  if (error instanceof errors.JWKSTimeout)
    return new TokenError('KH_KEYS_UNAVAILABLE', { cause: error })
  // JWSInvalid, JWTInvalid, JOSENotSupported (unknown crit, b64), a key of the wrong type: refuse.
  return new TokenError('KH_TOKEN_MALFORMED', { cause: error })
}

/** Verifies one token with `key`; returns the payload. */
export type TokenVerifier = (token: string, key: KeyResolver) => Promise<JWTPayload>

/**
 * The verifier of the token's signature and registered claims for one configuration: jose's
 * options are built once, here, and every call passes the same frozen object (jose reads them,
 * never writes them).
 *
 * @example
 * const verify = tokenVerifier(resolvedOptions)
 * const payload = await verify(token, key)
 * @throws TokenError (from the verifier) `KH_TOKEN_SIGNATURE`, `KH_TOKEN_EXPIRED`,
 *   `KH_TOKEN_CLAIM`, `KH_TOKEN_ALGORITHM`, `KH_TOKEN_KEY_UNKNOWN`, `KH_KEYS_UNAVAILABLE` or
 *   `KH_TOKEN_MALFORMED`
 */
export function tokenVerifier(options: VerifyOptions): TokenVerifier {
  const joseOptions = Object.freeze({
    algorithms: options.algorithms as string[],
    issuer: options.issuer as string | string[] | undefined,
    audience: options.audience as string | string[] | undefined,
    clockTolerance: options.clockTolerance,
    maxTokenAge: options.maxTokenAge,
    typ: options.typ,
    requiredClaims: options.requiredClaims as string[],
  })
  const { maxTokenLifetime } = options
  return async (token, key) => {
    const keyOrLookup =
      typeof key === 'function' ? (header: Parameters<typeof key>[0]) => key(header, token) : key
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, keyOrLookup, joseOptions))
    } catch (error) {
      throw toTokenError(error, options)
    }
    assertTimes(payload)
    assertLifetime(payload, maxTokenLifetime)
    assertNotIdToken(payload)
    return payload
  }
}

const timeClaims = ['exp', 'nbf', 'iat'] as const

function claimError(reason: string): TokenError {
  return new TokenError('KH_TOKEN_CLAIM', { reason })
}

/**
 * jose checks that `exp`, `nbf` and `iat` are numbers and compares them; a negative one (before
 * 1970) passes its comparisons for `nbf` and `iat`. No issuer mints such a time: refuse it.
 */
function assertTimes(payload: JWTPayload): void {
  for (const claim of timeClaims) {
    const value = payload[claim]
    if (value !== undefined && !(typeof value === 'number' && value >= 0)) {
      throw claimError(`${claim}: negative`)
    }
  }
}

/** How far in the future an `iat` may lie before it stops stretching the lifetime bound. */
const FUTURE_IAT_SECONDS = 300

/**
 * The lifetime bound: `exp - iat` (from now without `iat`) at most `maxTokenLifetime`, and `exp`
 * at most that plus five minutes from now, so an `iat` set in the future cannot stretch it. A token
 * without `exp` (allowed only with `requireExp: false`) is not bounded here.
 */
function assertLifetime(payload: JWTPayload, maxTokenLifetime: number | undefined): void {
  const { exp, iat } = payload
  if (maxTokenLifetime === undefined || exp === undefined) return
  const now = Date.now() / 1000
  if (exp - (iat ?? now) > maxTokenLifetime) {
    throw claimError(
      iat === undefined
        ? 'exp: further away than maxTokenLifetime (the token has no iat)'
        : 'exp - iat: longer than maxTokenLifetime',
    )
  }
  if (exp - now > maxTokenLifetime + FUTURE_IAT_SECONDS) {
    throw claimError('exp: further away than maxTokenLifetime (iat is in the future)')
  }
}

/**
 * Claims only an ID token carries (OpenID Connect Core §3.1.3.6, §3.3.2.11), Cognito's
 * `token_use: 'id'` and Keycloak's `typ: 'ID'` claim: none of the common providers puts them in an access token (see
 * docs/security-model.md), so they are refused whatever `typ` says. `nonce` and `azp` are not:
 * Keycloak before 25 put `nonce` in access tokens, and Auth0, Keycloak and Entra ID put `azp`.
 */
function assertNotIdToken(payload: JWTPayload): void {
  for (const claim of ['at_hash', 'c_hash'] as const) {
    if (payload[claim] !== undefined) throw claimError(`${claim}: an ID token, not an access token`)
  }
  if (payload.token_use === 'id') throw claimError('token_use: an ID token, not an access token')
  // Keycloak's payload `typ` (not the header's): `Bearer` in access tokens, `ID` in ID tokens.
  if (payload.typ === 'ID') throw claimError('typ (claim): an ID token, not an access token')
}
