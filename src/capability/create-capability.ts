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
  const bindings = bindingsOf(topRank, hierarchy.roles.length, isAdmin)
  const scopes = parts.scopes ?? NO_SCOPES
  // Methods, not arrow functions in const or properties: no helper closure per token (a
  // capability is cached with its token and serves its requests), and run
  // from source through tsx (esbuild's keepNames), no Object.defineProperty of a name on each one.
  return Object.freeze({
    subject: parts.subject,
    isAdmin,
    roles: hierarchy.roles,
    groupIdType,
    expiresAt: parts.expiresAt,
    scopes,
    // A token carries a few scopes and a route asks for one or two: a search, no Set per request.
    hasScope(scope: string): boolean {
      return scopes.includes(scope)
    },
    groups(role: string): readonly string[] {
      return (bindings[rankOf(hierarchy, role)] as RoleBinding).groups
    },
    binding(role: string): RoleBinding {
      return bindings[rankOf(hierarchy, role)] as RoleBinding
    },
    has(role: string, group?: string): boolean {
      const rank = rankOf(hierarchy, role)
      if (isAdmin) return true
      if (group === undefined) return (bindings[rank] as RoleBinding).groups.length > 0
      const id = parseGroupId(groupIdType, group)
      return id !== undefined && (topRank.get(id) ?? -1) >= rank
    },
  })
}

/** The rank of `role`; a role outside the hierarchy throws `KH_INVALID_OPTIONS`. */
function rankOf(hierarchy: RoleHierarchy, role: string): number {
  const rank = hierarchy.rank(role)
  if (rank === undefined) assertRoleKnown(hierarchy.roles, role)
  return rank as number
}

/**
 * One frozen binding per rank: the groups where the holder has that rank or a higher one, in
 * first-seen order. The lists are sized before they are filled: with thousands of groups, growing
 * each list by push (and copying it as it grows) cost more than the rest of the derivation.
 */
function bindingsOf(
  topRank: ReadonlyMap<string, number>,
  ranks: number,
  isAdmin: boolean,
): readonly RoleBinding[] {
  const sizes = new Array<number>(ranks).fill(0)
  for (const top of topRank.values()) sizes[top]!++
  for (let rank = ranks - 2; rank >= 0; rank--) sizes[rank]! += sizes[rank + 1]!
  const lists = sizes.map((size) => new Array<string>(size))
  const filled = new Array<number>(ranks).fill(0)
  for (const [group, top] of topRank) {
    for (let rank = 0; rank <= top; rank++) (lists[rank] as string[])[filled[rank]!++] = group
  }
  return lists.map((groups) => Object.freeze({ groups: Object.freeze(groups), isAdmin }))
}
