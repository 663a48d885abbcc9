/**
 * Finds the one bearer token of a request (RFC 6750 §2.1 header, or one configured cookie). No
 * decoding or crypto happens here: this only decides where the token is, and that there is one.
 */
import { TokenError } from '../errors.ts'

/** Where a request's token may be: the raw `Authorization` header and the configured cookie. */
export interface TokenSource {
  authorization?: string | undefined
  /** The value of the configured cookie, if the adapter found one. */
  cookie?: string | undefined
}

// One space, one token of visible non-space characters; the precheck judges the characters.
const bearer = /^bearer ([^\s]+)$/i
const bearerScheme = /^bearer(?:\s|$)/i

/**
 * Returns the token string.
 *
 * - no token anywhere, or another scheme (`Basic …`) → `KH_TOKEN_MISSING` (no `error=`: the client
 *   simply did not authenticate with a bearer token, RFC 6750 §3.1)
 * - `Bearer` alone, `Bearer a b`, two spaces, a tab → `KH_TOKEN_MALFORMED`
 * - a bearer header and a cookie → `KH_TOKEN_AMBIGUOUS` (one method only, RFC 6750 §2; a cookie next
 *   to a `Basic` header is used, since `Basic` carries no token)
 *
 * @example
 * extractToken({ authorization: 'Bearer eyJ…' }) // 'eyJ…'
 */
export function extractToken(source: TokenSource): string {
  const header = source?.authorization
  const cookie = source?.cookie === '' ? undefined : source?.cookie
  // Adapters pass strings; anything else (an array of two headers, an object) is never coerced.
  if (
    (header !== undefined && typeof header !== 'string') ||
    (cookie !== undefined && typeof cookie !== 'string')
  ) {
    throw new TokenError('KH_TOKEN_MALFORMED')
  }
  let fromHeader: string | undefined
  if (header !== undefined && bearerScheme.test(header)) {
    const match = bearer.exec(header)
    if (match === null) throw new TokenError('KH_TOKEN_MALFORMED')
    fromHeader = match[1] as string
  }
  if (fromHeader !== undefined) {
    if (cookie !== undefined) throw new TokenError('KH_TOKEN_AMBIGUOUS')
    return fromHeader
  }
  if (cookie !== undefined) return cookie
  throw new TokenError('KH_TOKEN_MISSING')
}
