/**
 * The framework-free decision behind `requireScope`: both adapters call it. Scopes are what the
 * client was granted (the token's `scope` or `scp` claim), checked apart from roles: a route may
 * ask for both, and an admin role grants no scope.
 */
import type { Capability } from './capability.ts'
import { ConfigurationError, InsufficientScope, TokenError } from '../errors.ts'
import { isScopeToken } from './scope-claim.ts'

/**
 * Throws unless the token carries every scope in `scopes` (exact, case-sensitive). No capability
 * → 401 `KH_TOKEN_MISSING`; a missing scope → 403 `KH_INSUFFICIENT_SCOPE`, whose challenge names
 * all of `scopes` (RFC 6750 §3.1).
 *
 * @example
 * assertScopes(request.capability, ['forum:write'], 'forum')
 */
export function assertScopes(
  capability: Capability | null | undefined,
  scopes: readonly string[],
  realm?: string,
): void {
  const options = realm === undefined ? {} : { realm }
  if (!capability) throw new TokenError('KH_TOKEN_MISSING', options)
  for (const scope of scopes) {
    if (!capability.hasScope(scope)) throw new InsufficientScope(scopes, options)
  }
}

/**
 * The checks of `requireScope(...scopes)` when a route is declared, the same in both adapters:
 * at least one scope, each one RFC 6749 scope token (one per argument: `'a b'` is refused rather
 * than read as either or both). Returns them deduplicated and frozen.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the bad argument
 */
export function requiredScopes(scopes: readonly unknown[]): readonly string[] {
  if (scopes.length === 0) {
    throw new ConfigurationError('KH_INVALID_OPTIONS', 'requireScope: name at least one scope')
  }
  for (const [index, scope] of scopes.entries()) {
    if (!isScopeToken(scope)) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `requireScope: argument ${index + 1} must be one scope (1 to 256 printable ASCII characters without space, " or \\); pass several scopes as several arguments`,
      )
    }
  }
  return Object.freeze([...new Set(scopes as readonly string[])])
}
