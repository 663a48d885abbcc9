/**
 * Builds the immutable Capability from validated parts. Everything a request or a guard asks of it
 * (the groups per role, the SQL binding) is computed here, once, in time linear in the number of
 * distinct groups.
 */
import type { Capability, GroupIdType, RoleBinding } from './capability.ts'
import { parseGroupId } from './group-id.ts'
import { assertRoleKnown, type RoleHierarchy } from './role-hierarchy.ts'

const NO_SCOPES: readonly string[] = Object.freeze([])

export interface CapabilityParts {
  readonly subject: string
  readonly hierarchy: RoleHierarchy
  readonly groupIdType: GroupIdType
  readonly expiresAt: number | undefined
  readonly isAdmin: boolean
  /** The token's scopes, deduplicated and frozen (see `scopesOf`); none when omitted. */
  readonly scopes?: readonly string[]
  /**
   * Each canonical group ID with the highest rank the holder has in it, in first-seen order. The
   * capability keeps it private (a handler never sees the Map, so it cannot add to it).
   */
  readonly topRank: ReadonlyMap<string, number>
}

/**
 * The frozen capability. `groups(role)` and `binding(role)` return the same frozen objects on
 * every call; `has` looks a group up in the private rank map. A role outside the hierarchy throws
 * a `KH_INVALID_OPTIONS` ConfigurationError from every method.
 *
 * @example
 * const capability = createCapability({ subject: 'alice', hierarchy, groupIdType: 'uuid',
 *   expiresAt: undefined, isAdmin: false, topRank: new Map([[groupA, 1]]) })
 * capability.groups('member') // [groupA]: a moderator is also a member
 */
export function createCapability(parts: CapabilityParts): Capability {
  const { hierarchy, groupIdType, isAdmin, topRank } = parts
  // Sized before they are filled: with thousands of groups, growing each list by push (and
  // copying it as it grows) cost more than the rest of the derivation.
  const sizes = new Array<number>(hierarchy.roles.length).fill(0)
  for (const top of topRank.values()) sizes[top]!++
  for (let rank = sizes.length - 2; rank >= 0; rank--) sizes[rank]! += sizes[rank + 1]!
  const lists: string[][] = sizes.map((size) => new Array<string>(size))
  const filled = new Array<number>(sizes.length).fill(0)
  for (const [group, top] of topRank) {
    for (let rank = 0; rank <= top; rank++) (lists[rank] as string[])[filled[rank]!++] = group
  }
  const bindings: readonly RoleBinding[] = lists.map((groups) =>
    Object.freeze({ groups: Object.freeze(groups), isAdmin }),
  )
  const rankOf = (role: string): number => {
    const rank = hierarchy.rank(role)
    if (rank === undefined) assertRoleKnown(hierarchy.roles, role)
    return rank as number
  }
  const binding = (role: string): RoleBinding => bindings[rankOf(role)] as RoleBinding
  const scopes = parts.scopes ?? NO_SCOPES
  return Object.freeze({
    subject: parts.subject,
    isAdmin,
    roles: hierarchy.roles,
    groupIdType,
    expiresAt: parts.expiresAt,
    scopes,
    // A token carries a few scopes and a route asks for one or two: a search, no Set per request.
    hasScope: (scope: string) => scopes.includes(scope),
    groups: (role: string) => binding(role).groups,
    binding,
    has(role: string, group?: string): boolean {
      const rank = rankOf(role)
      if (isAdmin) return true
      if (group === undefined) return (bindings[rank] as RoleBinding).groups.length > 0
      const id = parseGroupId(groupIdType, group)
      return id !== undefined && (topRank.get(id) ?? -1) >= rank
    },
  })
}
