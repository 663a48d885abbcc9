/**
 * A Capability built directly from `{ subject, admin, groups }`, for the SQL tests: derivation is
 * tested in test/capability/. Follows the interface: a role's groups include those of higher roles.
 */
import type { Capability, GroupIdType, RoleBinding } from '../../src/capability/capability.ts'
import { ConfigurationError } from '../../src/errors.ts'

export const ROLES = Object.freeze(['member', 'moderator', 'admin'])

export interface CapabilitySpec {
  subject?: string
  admin?: boolean
  groups?: { member?: readonly string[]; moderator?: readonly string[]; admin?: readonly string[] }
  groupIdType?: GroupIdType
}

export function makeCapability(spec: CapabilitySpec = {}): Capability {
  const groups = spec.groups ?? {}
  const isAdmin = spec.admin === true || (groups.admin?.length ?? 0) > 0
  const bindings = new Map<string, RoleBinding>()
  ROLES.forEach((role, i) => {
    const ids = new Set<string>()
    for (const higher of ROLES.slice(i)) {
      for (const id of groups[higher as keyof typeof groups] ?? []) ids.add(id)
    }
    bindings.set(role, Object.freeze({ groups: Object.freeze([...ids]), isAdmin }))
  })
  const binding = (role: string): RoleBinding => {
    const b = bindings.get(role)
    if (b === undefined) throw new ConfigurationError('KH_INVALID_OPTIONS', `Unknown role ${role}`)
    return b
  }
  return Object.freeze({
    subject: spec.subject ?? 'user-1',
    isAdmin,
    roles: ROLES,
    groupIdType: spec.groupIdType ?? 'uuid',
    expiresAt: undefined,
    scopes: [],
    hasScope: () => false,
    groups: (role: string) => binding(role).groups,
    has: (role: string, group?: string) =>
      isAdmin ||
      (group === undefined
        ? binding(role).groups.length > 0
        : binding(role).groups.includes(group)),
    binding,
  })
}
