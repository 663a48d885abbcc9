/**
 * Signature and claims, by jose's `jwtVerify`. jose checks the signature before the claims, so a
 * forged expired token reports a signature failure. Every jose error becomes one of ours, with
 * jose's kept as `cause`; nothing here ever accepts on an error.
 */
import { errors, jwtVerify, type JWTPayload } from 'jose'
import { TokenError } from '../errors.ts'
import type { ResolvedTokenOptions } from '../options.ts'
import type { KeyResolver } from './keys.ts'

type VerifyOptions = Pick<
  ResolvedTokenOptions,
  'algorithms' | 'issuer' | 'audience' | 'clockTolerance' | 'maxTokenAge' | 'typ' | 'requiredClaims'
>

/** Maps a jose (or key lookup) error to a TokenError; a TokenError passes through. */
export function toTokenError(error: unknown): TokenError {
  if (error instanceof TokenError) return error
  const cause = { cause: error }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError('KH_TOKEN_SIGNATURE', cause)
  }
  // JWTExpired extends JWTClaimValidationFailed: test it first.
  if (error instanceof errors.JWTExpired) return new TokenError('KH_TOKEN_EXPIRED', cause)
  if (error instanceof errors.JWTClaimValidationFailed) {
    return new TokenError('KH_TOKEN_CLAIM', cause)
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new TokenError('KH_TOKEN_ALGORITHM', cause)
  if (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return new TokenError('KH_TOKEN_KEY_UNKNOWN', cause)
  }
  if (error instanceof errors.JWKSTimeout) return new TokenError('KH_KEYS_UNAVAILABLE', cause)
  // JWSInvalid, JWTInvalid, JOSENotSupported (unknown crit, b64), a key of the wrong type: refuse.
  return new TokenError('KH_TOKEN_MALFORMED', cause)
}

/**
 * Verifies the token's signature and registered claims against the options; returns the payload.
 *
 * @example
 * const payload = await verifyToken(token, key, resolvedOptions)
 * @throws TokenError `KH_TOKEN_SIGNATURE`, `KH_TOKEN_EXPIRED`, `KH_TOKEN_CLAIM`,
 *   `KH_TOKEN_ALGORITHM`, `KH_TOKEN_KEY_UNKNOWN`, `KH_KEYS_UNAVAILABLE` or `KH_TOKEN_MALFORMED`
 */
export async function verifyToken(
  token: string,
  key: KeyResolver,
  options: VerifyOptions,
): Promise<JWTPayload> {
  const keyOrLookup =
    typeof key === 'function' ? (header: Parameters<typeof key>[0]) => key(header, token) : key
  try {
    const { payload } = await jwtVerify(token, keyOrLookup, {
      algorithms: options.algorithms as string[],
      issuer: options.issuer as string | string[] | undefined,
      audience: options.audience as string | string[] | undefined,
      clockTolerance: options.clockTolerance,
      maxTokenAge: options.maxTokenAge,
      typ: options.typ,
      requiredClaims: options.requiredClaims as string[],
    })
    assertTimes(payload)
    return payload
  } catch (error) {
    throw toTokenError(error)
  }
}

const timeClaims = ['exp', 'nbf', 'iat'] as const

/**
 * jose checks that `exp`, `nbf` and `iat` are numbers and compares them; a negative one (before
 * 1970) passes its comparisons for `nbf` and `iat`. No issuer mints such a time: refuse it.
 */
function assertTimes(payload: JWTPayload): void {
  for (const claim of timeClaims) {
    const value = payload[claim]
    if (value !== undefined && !(typeof value === 'number' && value >= 0)) {
      throw new TokenError('KH_TOKEN_CLAIM')
    }
  }
}
