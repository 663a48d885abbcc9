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
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * True when `text` (already known to hold only base64url characters) is the canonical encoding of
 * its bytes: no impossible length (a lone last character), and the bits the last character carries
 * beyond the bytes are zero. What re-encoding the decoded bytes would tell, without re-encoding.
 */
function isCanonical(text: string): boolean {
  const tail = text.length % 4
  if (tail === 0) return true
  if (tail === 1) return false
  const last = ALPHABET.indexOf(text[text.length - 1] as string)
  // Two characters carry one byte and 4 spare bits; three carry two bytes and 2 spare bits.
  return (last & (tail === 2 ? 0b1111 : 0b11)) === 0
}

/** The segment's bytes, or undefined unless it is canonical base64url (no padding or spare bits). */
function decodeSegment(text: string): Buffer | undefined {
  if (!segment.test(text) || !isCanonical(text)) return undefined
  return Buffer.from(text, 'base64url')
}

/** Whether the segment is canonical base64url, without decoding it (the signature). */
function isCanonicalSegment(text: string): boolean {
  return segment.test(text) && isCanonical(text)
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
 *   holding a JSON-object header and a UTF-8 payload (jose refuses a payload that is not a JSON
 *   object, after the signature), for `jwk`/`jku`/`x5u`/`x5c` headers and for a non-string `kid`
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
  if (!isCanonicalSegment(signature)) throw new TokenError('KH_TOKEN_MALFORMED')
  const header = decodeObject(headerText)
  // The payload: canonical and valid UTF-8 (jose would replace bad bytes with U+FFFD), checked
  // here; that it is a JSON object jose checks once the signature holds, so it is parsed once.
  const payloadBytes = decodeSegment(payloadText)
  if (payloadBytes === undefined) throw new TokenError('KH_TOKEN_MALFORMED')
  try {
    utf8.decode(payloadBytes)
  } catch (error) {
    throw new TokenError('KH_TOKEN_MALFORMED', { cause: error })
  }
  for (const name of refusedHeaders) {
    if (Object.hasOwn(header, name)) throw new TokenError('KH_TOKEN_MALFORMED')
  }
  if (Object.hasOwn(header, 'kid') && typeof header.kid !== 'string') {
    throw new TokenError('KH_TOKEN_MALFORMED')
  }
  const alg = header.alg
  if (typeof alg !== 'string' || !algorithms.has(alg)) {
    throw new TokenError('KH_TOKEN_ALGORITHM', { reason: 'alg: not in algorithms' })
  }
  return header as PrecheckedHeader
}
