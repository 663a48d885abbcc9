/**
 * The scopes of an access token, read from one of the two claims providers use:
 * - `scope`, a space-separated string (RFC 9068 §2.2.3, RFC 8693 §4.2: Auth0, Keycloak, Amazon
 *   Cognito, oidc-provider); a list of strings is read too (some providers emit one);
 * - `scp`, a list of strings (Okta) or a space-separated string (Microsoft Entra ID).
 *
 * Each scope is an RFC 6749 §3.3 scope token (printable ASCII without space, `"` or `\`), at most
 * 256 characters; at most {@link MAX_SCOPES} of them. Anything else, and a token carrying both
 * claims (which one would count is a guess), makes the token invalid: 401 `KH_TOKEN_SCOPE`.
 */
import { z } from 'zod'
import { TokenError } from '../errors.ts'

/** The most scopes a token may carry (more is refused, not truncated). */
export const MAX_SCOPES = 1024

/** One RFC 6749 §3.3 scope token (NQCHAR: %x21 / %x23-5B / %x5D-7E), at most 256 characters. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/

/** Whether `value` is one scope token (what `requireScope` accepts as an argument, too). */
export function isScopeToken(value: unknown): value is string {
  return typeof value === 'string' && SCOPE_TOKEN.test(value)
}

const scopeList = z.array(z.string().regex(SCOPE_TOKEN, 'must be a scope token')).max(MAX_SCOPES)

/**
 * The zod schema of a scope claim: a space-separated string (runs of spaces tolerated) or a list
 * of scope tokens, read into the list.
 *
 * @example
 * scopeClaimSchema.parse('forum:read forum:write') // ['forum:read', 'forum:write']
 */
export const scopeClaimSchema = z.union([
  z
    .string()
    .max(MAX_SCOPES * 257)
    .transform((text) => text.split(' ').filter((scope) => scope !== ''))
    .pipe(scopeList),
  scopeList,
])

const NO_SCOPES: readonly string[] = Object.freeze([])

/**
 * The token's scopes, deduplicated in their order, frozen; none when it carries neither claim.
 * @throws TokenError `KH_TOKEN_SCOPE` for a malformed claim or both claims
 * @example
 * scopesOf({ scp: ['forum:read'] }) // ['forum:read']
 */
export function scopesOf(payload: Readonly<Record<string, unknown>>): readonly string[] {
  const hasScope = Object.hasOwn(payload, 'scope')
  const hasScp = Object.hasOwn(payload, 'scp')
  if (!hasScope && !hasScp) return NO_SCOPES
  if (hasScope && hasScp) {
    throw new TokenError('KH_TOKEN_SCOPE', {
      cause: new Error('The access token carries both scope and scp'),
    })
  }
  const claim = hasScope ? 'scope' : 'scp'
  const parsed = scopeClaimSchema.safeParse(payload[claim])
  if (!parsed.success) {
    throw new TokenError('KH_TOKEN_SCOPE', {
      cause: new Error(`${claim} is not a list of scope tokens`, { cause: parsed.error }),
    })
  }
  const scopes = parsed.data
  if (scopes.length === 0) return NO_SCOPES
  return Object.freeze(scopes.length === 1 ? scopes : [...new Set(scopes)])
}
