/**
 * Builds the immutable Capability from already-validated parts. Everything a request or a guard
 * asks of it (the groups per role, the SQL binding, membership sets) is computed here, once.
 */
import type { Capability, GroupIdType, RoleBinding } from './capability.ts'
import { assertRoleKnown } from './role-hierarchy.ts'
import { parseGroupId } from './group-id.ts'

export interface CapabilityParts {
  readonly subject: string
  readonly roles: readonly string[]
  readonly groupIdType: GroupIdType
  readonly expiresAt: number | undefined
  readonly isAdmin: boolean
  /** For each rank, the groups where the holder has that rank or a higher one. */
  readonly groupsByRank: readonly (readonly string[])[]
}

interface RoleEntry {
  readonly binding: RoleBinding
  readonly members: ReadonlySet<string>
}

export function createCapability(parts: CapabilityParts): Capability {
  const { roles, groupIdType, isAdmin } = parts
  const byRole = new Map<string, RoleEntry>()
  roles.forEach((role, rank) => {
    const groups = Object.freeze([...(parts.groupsByRank[rank] as readonly string[])])
    byRole.set(role, {
      binding: Object.freeze({ groups, isAdmin }),
      members: new Set(groups),
    })
  })
  const entry = (role: string): RoleEntry => {
    const found = byRole.get(role)
    if (found === undefined) assertRoleKnown(roles, role)
    return found as RoleEntry
  }
  return Object.freeze({
    subject: parts.subject,
    isAdmin,
    roles,
    groupIdType,
    expiresAt: parts.expiresAt,
    groups: (role: string) => entry(role).binding.groups,
    binding: (role: string) => entry(role).binding,
    has(role: string, group?: string): boolean {
      const { members } = entry(role)
      if (isAdmin) return true
      if (group === undefined) return members.size > 0
      const id = parseGroupId(groupIdType, group)
      return id !== undefined && members.has(id)
    },
  })
}
