/**
 * Cheap structural checks before any crypto (RFC 7519 §7.2). jose alone accepts padding, some
 * whitespace, non-zero spare bits and megabyte tokens; keyhole refuses them here, so only a
 * canonical, bounded compact JWS with an allowed algorithm reaches a signature check.
 */
import { TokenError } from '../errors.ts'

/** The decoded protected header, as far as keyhole reads it. */
export interface PrecheckedHeader {
  readonly alg: string
  readonly kid?: string
  readonly [name: string]: unknown
}

const segment = /^[A-Za-z0-9_-]+$/
const utf8 = new TextDecoder('utf-8', { fatal: true })
// Header parameters that name a key to trust: keyhole's keys come from its options only.
const refusedHeaders = ['jwk', 'jku', 'x5u', 'x5c'] as const

/** Decodes one canonical base64url segment, or returns undefined. */
function decodeSegment(text: string): Buffer | undefined {
  if (!segment.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64url')
  // Re-encoding is the canonical form: this refuses non-zero spare bits and impossible lengths.
  return bytes.toString('base64url') === text ? bytes : undefined
}

function decodeObject(text: string): Record<string, unknown> {
  const bytes = decodeSegment(text)
  if (bytes === undefined) throw new TokenError('KH_TOKEN_MALFORMED')
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(bytes))
  } catch (error) {
    throw new TokenError('KH_TOKEN_MALFORMED', { cause: error })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenError('KH_TOKEN_MALFORMED')
  }
  return value as Record<string, unknown>
}

/**
 * Checks the token's size, shape and header; returns the header.
 *
 * @param maxTokenBytes the byte cap; a larger token is `KH_TOKEN_TOO_LARGE`
 * @param algorithms the allowlist; any other `alg` (`none` in any spelling included) is
 *   `KH_TOKEN_ALGORITHM`
 * @throws TokenError `KH_TOKEN_MALFORMED` for anything but three canonical base64url segments
 *   holding a JSON-object header and payload, for `jwk`/`jku`/`x5u`/`x5c` headers and for a
 *   non-string `kid`
 */
export function precheckToken(
  token: string,
  maxTokenBytes: number,
  algorithms: ReadonlySet<string>,
): PrecheckedHeader {
  // Length first: UTF-8 never has fewer bytes than UTF-16 units, and it avoids scanning a huge string.
  if (token.length > maxTokenBytes || Buffer.byteLength(token) > maxTokenBytes) {
    throw new TokenError('KH_TOKEN_TOO_LARGE')
  }
  const parts = token.split('.')
  if (parts.length !== 3) throw new TokenError('KH_TOKEN_MALFORMED')
  const [headerText, payloadText, signature] = parts as [string, string, string]
  if (decodeSegment(signature) === undefined) throw new TokenError('KH_TOKEN_MALFORMED')
  const header = decodeObject(headerText)
  decodeObject(payloadText)
  for (const name of refusedHeaders) {
    if (Object.hasOwn(header, name)) throw new TokenError('KH_TOKEN_MALFORMED')
  }
  if (Object.hasOwn(header, 'kid') && typeof header.kid !== 'string') {
    throw new TokenError('KH_TOKEN_MALFORMED')
  }
  const alg = header.alg
  if (typeof alg !== 'string' || !algorithms.has(alg)) throw new TokenError('KH_TOKEN_ALGORITHM')
  return header as PrecheckedHeader
}
