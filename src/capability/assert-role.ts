/**
 * The framework-free decision behind `requireRole`: both adapters call it. `assertRoleKnown` runs
 * when a route is registered; `assertRole` or `assertRoleInGroup` on each request, before any
 * database work.
 */
import type { Capability } from './capability.ts'
import { BadRequest, ConfigurationError, Forbidden, TokenError } from '../errors.ts'
import { parseGroupId } from './group-id.ts'

export { assertRoleKnown } from './role-hierarchy.ts'

function realmOption(realm: string | undefined): { realm?: string } {
  return realm === undefined ? {} : { realm }
}

/**
 * The capability of a request that must have one: no capability (a public route) is a 401
 * `KH_TOKEN_MISSING`, as for any request without a token.
 * @example
 * // request.requireCapability() in both adapters
 * presentCapability(request.capability, 'forum').subject
 */
export function presentCapability(
  capability: Capability | null | undefined,
  realm?: string,
): Capability {
  if (!capability) throw new TokenError('KH_TOKEN_MISSING', realmOption(realm))
  return capability
}

/**
 * Throws unless the holder has `role` (or a higher one) in `group`; an admin always passes.
 *
 * Use this one when the route names a group (e.g. from a path parameter): a group that is missing
 * (`undefined`, `null`) or not an ID of the configured type is a 400 `KH_BAD_REQUEST`, never
 * widened to "anywhere" and never passed on to SQL. No capability → 401 `KH_TOKEN_MISSING`;
 * refusal → 403 `KH_FORBIDDEN` (`insufficient_scope`). A role outside the hierarchy throws a
 * `KH_INVALID_OPTIONS` ConfigurationError (check it at registration with `assertRoleKnown`).
 *
 * @example
 * // requireRole('moderator', { group: (request) => request.params.groupId })
 * assertRoleInGroup(request.capability, 'moderator', request.params.groupId, 'forum')
 */
export function assertRoleInGroup(
  capability: Capability | null | undefined,
  role: string,
  group: unknown,
  realm?: string,
): void {
  if (!capability) throw new TokenError('KH_TOKEN_MISSING', realmOption(realm))
  const id = parseGroupId(capability.groupIdType, group)
  if (id === undefined) throw new BadRequest({ message: 'The group ID is malformed' })
  if (!capability.has(role, id)) throw new Forbidden(realmOption(realm))
}

/**
 * Throws unless the holder has `role` (or a higher one) anywhere or, when `group` is given, in
 * that group; an admin always passes. Errors as {@link assertRoleInGroup}.
 *
 * `group === undefined` means "anywhere": an adapter whose route names a group must call
 * {@link assertRoleInGroup}, so a group resolver that returns nothing fails closed.
 *
 * @example
 * assertRole(request.capability, 'moderator') // moderator (or admin) somewhere
 */
export function assertRole(
  capability: Capability | null | undefined,
  role: string,
  group?: unknown,
  realm?: string,
): void {
  if (group !== undefined) return assertRoleInGroup(capability, role, group, realm)
  if (!capability) throw new TokenError('KH_TOKEN_MISSING', realmOption(realm))
  if (!capability.has(role)) throw new Forbidden(realmOption(realm))
}

/** @deprecated use {@link assertRole} (the same function: it throws, it does not report). */
export const checkRole = assertRole

/**
 * What an adapter's `requireRole(role, { group })` checks on each request: with a group resolver,
 * the role in the group it returns (a missing group is a 400 `KH_BAD_REQUEST`, never widened to
 * "anywhere"; the resolver is only asked once there is a capability); without one, the role
 * anywhere. Errors as {@link assertRoleInGroup}.
 */
export function assertRequiredRole(
  capability: Capability | null | undefined,
  role: string,
  group: (() => unknown) | undefined,
  realm?: string,
): void {
  if (!capability || group === undefined) return assertRole(capability, role, undefined, realm)
  const id = group()
  if (id === undefined || id === null) throw new BadRequest({ message: 'The group ID is missing' })
  assertRoleInGroup(capability, role, id, realm)
}

/**
 * The checks of `requireRole(role, options)` when a route is declared, the same in both adapters.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for an empty role or a group resolver that is
 *   not a function
 */
export function assertRequireRoleArguments(role: unknown, group: unknown): asserts role is string {
  if (typeof role !== 'string' || role === '') {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'requireRole: the role must be a non-empty string',
    )
  }
  if (group !== undefined && typeof group !== 'function') {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'Invalid option requireRole.group: must be a function returning the group ID',
    )
  }
}
