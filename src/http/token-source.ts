/**
 * Where the token comes from: the `Authorization` header and, when configured, one cookie. Reads
 * the raw header list, because Node keeps only the first of several `Authorization` headers and
 * would silently pick one of two tokens.
 */
import { parseCookie } from 'cookie'
import type { TokenSource } from '../token/authenticate.ts'
import { TokenError } from '../errors.ts'

/** The parts of Node's `IncomingMessage` this reads. */
export interface RawRequest {
  /** The HTTP method (for the decision events). */
  readonly method?: string | undefined
  readonly headers: {
    readonly authorization?: string | undefined
    readonly cookie?: string | undefined
  }
  readonly rawHeaders: readonly string[]
}

function count(rawHeaders: readonly string[], name: string): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) n++
  }
  return n
}

/**
 * A cookie-value as RFC 6265 §4.1.1 writes it: optionally inside double quotes (not part of the
 * value), percent-decoded as Express's and Fastify's cookie parsers do (an invalid escape is left
 * as is, and the token's own check refuses it).
 */
function decodeValue(raw: string): string {
  const value = raw.length > 1 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

const blanks = /^[ \t]+|[ \t]+$/g

/** How many cookie-pairs are named `name` (trimmed as the cookie package trims names). */
function occurrences(header: string, name: string): number {
  let n = 0
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq >= 0 && pair.slice(0, eq).replace(blanks, '') === name) n++
  }
  return n
}

/**
 * The value of cookie `name`, or undefined. Parsed by the `cookie` package (the one Express and
 * @fastify/cookie use), which keeps the first of two cookies of the same name; keyhole refuses
 * them instead: which one is the token? A second one is how a sibling subdomain plants its own
 * token next to the user's (cookie tossing).
 */
function cookieValue(header: string | undefined, name: string, realm: string): string | undefined {
  if (header === undefined) return undefined
  const value = parseCookie(header, { decode: decodeValue })[name]
  if (value !== undefined && occurrences(header, name) > 1) {
    throw new TokenError('KH_TOKEN_AMBIGUOUS', { realm })
  }
  return value
}

/**
 * The token source of one request.
 * @throws TokenError `KH_TOKEN_AMBIGUOUS` for several `Authorization` headers or a repeated cookie.
 */
export function tokenSource(
  request: RawRequest,
  cookieName: string | undefined,
  realm: string,
): TokenSource {
  const authorization = request.headers.authorization
  if (authorization !== undefined && count(request.rawHeaders, 'authorization') > 1) {
    throw new TokenError('KH_TOKEN_AMBIGUOUS', { realm })
  }
  const cookie =
    cookieName === undefined ? undefined : cookieValue(request.headers.cookie, cookieName, realm)
  return { authorization, cookie }
}
