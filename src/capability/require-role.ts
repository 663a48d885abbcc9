/**
 * The framework-free decision behind `requireRole`: both adapters call it. `assertRoleKnown` runs
 * when a route is registered; `checkRole` or `checkRoleInGroup` on each request, before any
 * database work.
 */
import type { Capability } from './capability.ts'
import { BadRequest, Forbidden, TokenError } from '../errors.ts'
import { parseGroupId } from './group-id.ts'

export { assertRoleKnown } from './role-hierarchy.ts'

function realmOption(realm: string | undefined): { realm?: string } {
  return realm === undefined ? {} : { realm }
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
 * checkRoleInGroup(request.capability, 'moderator', request.params.groupId, 'forum')
 */
export function checkRoleInGroup(
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
 * that group; an admin always passes. Errors as {@link checkRoleInGroup}.
 *
 * `group === undefined` means "anywhere": an adapter whose route names a group must call
 * {@link checkRoleInGroup}, so a group resolver that returns nothing fails closed.
 *
 * @example
 * checkRole(request.capability, 'moderator') // moderator (or admin) somewhere
 */
export function checkRole(
  capability: Capability | null | undefined,
  role: string,
  group?: unknown,
  realm?: string,
): void {
  if (group !== undefined) return checkRoleInGroup(capability, role, group, realm)
  if (!capability) throw new TokenError('KH_TOKEN_MISSING', realmOption(realm))
  if (!capability.has(role)) throw new Forbidden(realmOption(realm))
}
