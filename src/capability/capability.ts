/**
 * The capability: what a verified token lets its holder do, derived once per request and frozen.
 * Group IDs are canonical strings whatever the configured {@link GroupIdType}: UUIDs lower-case,
 * integers in plain decimal. They reach SQL only as parameters, cast to the configured type.
 */

/** How group IDs are typed, in the claim and in the database. */
export type GroupIdType = 'uuid' | 'bigint' | 'integer' | 'text'

/** What a guard binds for one role: the group-ID array and the admin flag (never NULL). */
export interface RoleBinding {
  readonly groups: readonly string[]
  readonly isAdmin: boolean
}

export interface Capability {
  /** The token's subject (by default its `sub` claim). */
  readonly subject: string
  /** True when the holder has the admin role in any group: admin everywhere. */
  readonly isAdmin: boolean
  /** The role hierarchy, lowest first (default `['member', 'moderator', 'admin']`). */
  readonly roles: readonly string[]
  /** The configured group-ID type, for the SQL cast. */
  readonly groupIdType: GroupIdType
  /** The token's `exp` (seconds since the epoch), when it has one. */
  readonly expiresAt: number | undefined
  /**
   * The token's scopes (its `scope` or `scp` claim), deduplicated, frozen; empty without either.
   * What the client was granted, independent of roles: an admin has only the scopes of its token.
   */
  readonly scopes: readonly string[]
  /** Whether the token carries `scope` (exact, case-sensitive). */
  hasScope(scope: string): boolean
  /**
   * The group IDs where the holder has `role` or a higher one; deduplicated, frozen, computed at
   * derivation. Throws a `KH_INVALID_OPTIONS` ConfigurationError for a role outside the hierarchy
   * (a typo in code must fail loudly, never grant).
   */
  groups(role: string): readonly string[]
  /** Whether the holder has `role` (or higher) anywhere, or in `group`; admins always do. */
  has(role: string, group?: string): boolean
  /** What the SQL guards bind for `role`: the same frozen object on every call. */
  binding(role: string): RoleBinding
}
