/**
 * The ordered role hierarchy (lowest first). Ranks are looked up in a Map built once when options
 * are resolved, never per request.
 */
import { ConfigurationError } from '../errors.ts'

export interface RoleHierarchy {
  /** Lowest first, e.g. `['member', 'moderator', 'admin']`; frozen. */
  readonly roles: readonly string[]
  /** The role that makes its holder admin everywhere; it and every role above it do. */
  readonly adminRole: string
  /** The rank of `adminRole`. */
  readonly adminRank: number
  /** The rank of `role` (0 for the lowest), or `undefined` for a name outside the hierarchy. */
  rank(role: string): number | undefined
}

/**
 * Builds the hierarchy; `roles` must be unique and contain `adminRole` (the options schema has
 * checked both).
 *
 * @example
 * const h = createRoleHierarchy(['member', 'moderator', 'admin'], 'admin')
 * h.rank('moderator') // 1
 * h.rank('Admin') // undefined: names are exact
 */
export function createRoleHierarchy(roles: readonly string[], adminRole: string): RoleHierarchy {
  const ranks = new Map<string, number>(roles.map((role, index) => [role, index]))
  return Object.freeze({
    roles: Object.freeze([...roles]),
    adminRole,
    adminRank: ranks.get(adminRole) as number,
    rank: (role: string) => ranks.get(role),
  })
}

/**
 * Throws a `KH_INVALID_OPTIONS` ConfigurationError naming `role` when it is not in the hierarchy:
 * a typo in application code (`requireRole('moderater')`) must fail loudly at registration, never
 * grant or refuse silently at request time.
 *
 * @example
 * assertRoleKnown(['member', 'admin'], 'moderator') // throws: Unknown role "moderator" …
 */
export function assertRoleKnown(roles: readonly string[], role: string): void {
  if (!roles.includes(role)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `Unknown role ${JSON.stringify(role)}: the hierarchy is ${roles.map((r) => JSON.stringify(r)).join(', ')}`,
    )
  }
}
