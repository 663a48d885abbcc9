/**
 * Where the token comes from: the `Authorization` header and, when configured, one cookie. Reads
 * the raw header list, because Node keeps only the first of several `Authorization` headers and
 * would silently pick one of two tokens.
 */
import type { TokenSource } from '../token/authenticate.ts'
import { TokenError } from '../errors.ts'

/** The parts of Node's `IncomingMessage` this reads. */
export interface RawRequest {
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

/** The value of cookie `name`, or undefined; a name sent twice is ambiguous (which is the token?). */
function cookieValue(header: string | undefined, name: string, realm: string): string | undefined {
  if (header === undefined) return undefined
  let value: string | undefined
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue
    if (value !== undefined) throw new TokenError('KH_TOKEN_AMBIGUOUS', { realm })
    value = pair.slice(eq + 1).trim()
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
