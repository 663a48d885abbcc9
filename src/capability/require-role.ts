/**
 * The framework-free decision behind `requireRole`: both adapters call it.
 */
import type { Capability } from './capability.ts'
import { BadRequest, Forbidden, TokenError } from '../errors.ts'
import { parseGroupId } from './group-id.ts'

export { assertRoleKnown } from './role-hierarchy.ts'

/**
 * Throws unless the holder has `role` (or a higher one) anywhere, or in `group` when given; an
 * admin always passes. No capability → 401 `KH_TOKEN_MISSING`; a group value that is not a group ID
 * of the configured type → 400 (it never reaches SQL); refusal → 403 `KH_FORBIDDEN`.
 */
export function checkRole(
  capability: Capability | null | undefined,
  role: string,
  group?: unknown,
  realm?: string,
): void {
  if (!capability) throw new TokenError('KH_TOKEN_MISSING', realm === undefined ? {} : { realm })
  let id: string | undefined
  if (group !== undefined) {
    id = parseGroupId(capability.groupIdType, group)
    if (id === undefined) throw new BadRequest({ message: 'The group ID is malformed' })
  }
  if (!capability.has(role, id)) throw new Forbidden(realm === undefined ? {} : { realm })
}
