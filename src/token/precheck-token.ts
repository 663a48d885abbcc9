/**
 * Cheap structural checks before any crypto (RFC 7519 §7.2). jose alone accepts padding, some
 * whitespace, non-zero spare bits and megabyte tokens; keyhole refuses them here, so only a
 * canonical, bounded compact JWS with an allowed algorithm reaches a signature check.
 */
import { isUtf8 } from 'node:buffer'
import { TokenError } from '../errors.ts'

/** The decoded protected header, as far as keyhole reads it. */
export interface PrecheckedHeader {
  readonly alg: string
  readonly kid?: string
  readonly [name: string]: unknown
}

/** Checks one token; returns its header (frozen). See {@link createPrecheck}. */
export type Precheck = (token: string) => PrecheckedHeader

// Three segments of base64url characters, none empty: also what makes the token ASCII, so that
// its length is its size in bytes.
const compact = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const utf8 = new TextDecoder('utf-8', { fatal: true })
// Header parameters that name a key to trust: keyhole's keys come from its options only.
const refusedHeaders = ['jwk', 'jku', 'x5u', 'x5c'] as const

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

function decodeObject(text: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(Buffer.from(text, 'base64url')))
  } catch (error) {
    throw new TokenError('KH_TOKEN_MALFORMED', { cause: error })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenError('KH_TOKEN_MALFORMED')
  }
  return value as Record<string, unknown>
}

/** What keyhole refuses in a decoded header: key-naming parameters, a non-string kid, an alg outside the allowlist. */
function assertHeader(
  header: Record<string, unknown>,
  algorithms: ReadonlySet<string>,
): PrecheckedHeader {
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
  return Object.freeze(header) as PrecheckedHeader
}

/**
 * The check of a token's size, shape and header for one configuration, made once: the allowlist
 * is copied, and the last header segment accepted is remembered with its decoded header. An issuer
 * signs every token with the same few headers, so a request whose header segment is the same
 * string skips decoding it again: the verdict depends on that string and the allowlist alone.
 * The check returns the header (frozen).
 *
 * @param maxTokenBytes the byte cap; a larger token is `KH_TOKEN_TOO_LARGE`
 * @param algorithms the allowlist; any other `alg` (`none` in any spelling included) is
 *   `KH_TOKEN_ALGORITHM`
 * @throws TokenError (from the check) `KH_TOKEN_MALFORMED` for anything but three canonical
 *   base64url segments holding a JSON-object header and a UTF-8 payload (jose refuses a payload
 *   that is not a JSON object, after the signature), for `jwk`/`jku`/`x5u`/`x5c` headers and for
 *   a non-string `kid`
 * @example
 * const precheck = createPrecheck(8192, new Set(['RS256']))
 * precheck(token).alg // 'RS256'
 */
export function createPrecheck(maxTokenBytes: number, algorithms: ReadonlySet<string>): Precheck {
  const allowed: ReadonlySet<string> = new Set(algorithms)
  let lastText: string | undefined
  let lastHeader: PrecheckedHeader | undefined
  return (token) => {
    // Length first: UTF-8 never has fewer bytes than UTF-16 units, and it avoids scanning a huge
    // string. A token of base64url characters and dots is ASCII: its length is its byte count.
    if (token.length > maxTokenBytes) throw new TokenError('KH_TOKEN_TOO_LARGE')
    if (!compact.test(token)) {
      if (Buffer.byteLength(token) > maxTokenBytes) throw new TokenError('KH_TOKEN_TOO_LARGE')
      throw new TokenError('KH_TOKEN_MALFORMED')
    }
    const first = token.indexOf('.')
    const second = token.indexOf('.', first + 1)
    const headerText = token.slice(0, first)
    const payloadText = token.slice(first + 1, second)
    if (
      !isCanonical(token.slice(second + 1)) ||
      !isCanonical(headerText) ||
      !isCanonical(payloadText)
    ) {
      throw new TokenError('KH_TOKEN_MALFORMED')
    }
    const known = headerText === lastText ? lastHeader : undefined
    const header = known ?? decodeObject(headerText)
    // The payload: valid UTF-8 (jose would replace bad bytes with U+FFFD), checked here without
    // making a string of it; that it is a JSON object jose checks once the signature holds, so it
    // is parsed once.
    if (!isUtf8(Buffer.from(payloadText, 'base64url'))) {
      // A TypeError, as TextDecoder's for the header: the cause says the bytes were not text.
      throw new TokenError('KH_TOKEN_MALFORMED', {
        cause: new TypeError('The payload is not valid UTF-8'),
      })
    }
    if (known !== undefined) return known
    const checked = assertHeader(header, allowed)
    lastText = headerText
    lastHeader = checked
    return checked
  }
}
