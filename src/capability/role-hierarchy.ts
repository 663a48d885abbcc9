/**
 * The ordered role hierarchy (lowest first). Ranks are looked up in a Map built once when options
 * are resolved, never per request.
 */
import { ConfigurationError } from '../errors.ts'

export interface RoleHierarchy {
  /** Lowest first, e.g. `['member', 'moderator', 'admin']`. */
  readonly roles: readonly string[]
  readonly adminRole: string
  /** The rank of `role`, or `undefined` for a name outside the hierarchy (it grants nothing). */
  rank(role: string): number | undefined
}

export function createRoleHierarchy(roles: readonly string[], adminRole: string): RoleHierarchy {
  const ranks = new Map<string, number>(roles.map((role, index) => [role, index]))
  return Object.freeze({
    roles: Object.freeze([...roles]),
    adminRole,
    rank: (role: string) => ranks.get(role),
  })
}

/** Throws a ConfigurationError naming `role` when it is not in the hierarchy (a typo in code). */
export function assertRoleKnown(roles: readonly string[], role: string): void {
  if (!roles.includes(role)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `Unknown role ${JSON.stringify(role)}: the hierarchy is ${roles.map((r) => JSON.stringify(r)).join(', ')}`,
    )
  }
}
