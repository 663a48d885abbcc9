/**
 * Guards: declarative conditions on a row that render to SQL. A guard names columns and roles,
 * never values; the capability's group IDs, admin flag and subject reach SQL only as parameters
 * (or, in an RLS policy, as calls to the `keyhole` schema's functions). Every identifier is checked
 * here, when the guard is built.
 */
import { ConfigurationError } from '../errors.ts'
import { quoteIdentifier, quoteTable, type TableName } from './identifier.ts'

/** The tree a guard is made of; see {@link renderGuard} for the SQL of each node. */
export type GuardNode =
  | { readonly kind: 'inGroup'; readonly column: string; readonly role: string }
  | {
      readonly kind: 'viaParent'
      readonly table: TableName
      readonly key: string
      readonly column: string
      readonly parent: GuardNode
    }
  | { readonly kind: 'isSubject'; readonly column: string }
  | { readonly kind: 'and' | 'or'; readonly guards: readonly GuardNode[] }
  | { readonly kind: 'adminOnly' }

let nextId = 0

/** A condition on a row, built by {@link inGroup}, {@link viaParent}, {@link isSubject} and friends. */
export class Guard {
  /** Unique per guard; part of a compiled statement's cache key. */
  readonly id: number
  readonly node: GuardNode

  /** @internal use the guard functions. */
  constructor(node: GuardNode) {
    this.id = nextId++
    this.node = node
    Object.freeze(this)
  }
}

/** True for a value built by one of the guard functions. */
export function isGuard(value: unknown): value is Guard {
  return value instanceof Guard
}

/** Throws a ConfigurationError naming `verb` unless `value` is a guard: no guard, no statement. */
export function assertGuard(value: unknown, verb: string): asserts value is Guard {
  if (!isGuard(value)) throw new ConfigurationError('KH_INVALID_OPTIONS', `${verb} needs a guard`)
}

function parseRoleName(role: unknown): string {
  quoteIdentifier(role, 'role')
  return role as string
}

/**
 * The row's group column is among the holder's groups for `role` (or a higher role), or the holder
 * is admin.
 *
 * The generated SQL, in a statement on `discussion_threads` (non-admin; admin folds to `TRUE`):
 * ```sql
 * "t"."group_id" = ANY ($1::uuid[])
 * ```
 * In an RLS policy:
 * ```sql
 * ("discussion_threads"."group_id" = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin()))
 * ```
 * @example inGroup('group_id', 'member')
 */
export function inGroup(column: string, role: string): Guard {
  return new Guard({
    kind: 'inGroup',
    column: quoteIdentifier(column, 'column'),
    role: parseRoleName(role),
  })
}

/** How a row reaches its parent: `row.column = parent.key`, then the parent's group column. */
export interface ParentLink {
  /** The parent table, optionally schema-qualified. */
  readonly table: string
  /** The parent's key column that `column` refers to (usually `id`). */
  readonly key: string
  /** This row's column that refers to the parent. */
  readonly column: string
  /**
   * The parent's group column (checked with `role`), a further {@link ParentLink} (also checked
   * with `role`, at the end of the chain), or any guard evaluated on the parent row (then omit
   * `role`: the guard carries its own).
   */
  readonly groupColumn: string | ParentLink | Guard
}

function parentNode(link: ParentLink, role: string | undefined): GuardNode {
  if (link === null || typeof link !== 'object') {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'viaParent needs { table, key, column, groupColumn }',
    )
  }
  const table = quoteTable(link.table)
  const key = quoteIdentifier(link.key, 'column')
  const column = quoteIdentifier(link.column, 'column')
  let parent: GuardNode
  if (isGuard(link.groupColumn)) {
    if (role !== undefined) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        'viaParent: when groupColumn is a guard it carries its own role; omit the role argument',
      )
    }
    parent = link.groupColumn.node
  } else {
    if (role === undefined) {
      throw new ConfigurationError('KH_INVALID_OPTIONS', 'viaParent needs a role')
    }
    parent =
      typeof link.groupColumn === 'string'
        ? inGroup(link.groupColumn, role).node
        : parentNode(link.groupColumn, role)
  }
  return { kind: 'viaParent', table, key, column, parent }
}

/**
 * The row's parent (found through `column = parent.key`) passes the group check: for tables
 * without a group column of their own. Nestable (comment → post → thread → group).
 *
 * The generated SQL, in a statement on `posts` (non-admin):
 * ```sql
 * EXISTS (SELECT 1 FROM "discussion_threads" AS "p1"
 *         WHERE ("p1"."id" = "t"."thread_id" AND "p1"."group_id" = ANY ($1::uuid[])))
 * ```
 * For an admin the group condition folds away but the parent must still exist.
 * @example
 * viaParent({ table: 'discussion_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' }, 'member')
 * // two levels: a comment → its post → the post's thread → the group
 * viaParent({ table: 'posts', key: 'id', column: 'post_id', groupColumn:
 *   { table: 'discussion_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' } }, 'member')
 */
export function viaParent(link: ParentLink, role?: string): Guard {
  return new Guard(parentNode(link, role))
}

/**
 * The row's column holds the capability's subject (e.g. its author). Admins get no exception.
 *
 * The generated SQL, in a statement on `discussion_threads`:
 * ```sql
 * "t"."created_by" = $1
 * ```
 * In an RLS policy:
 * ```sql
 * "discussion_threads"."created_by"::text = (SELECT keyhole.subject())
 * ```
 * @example isSubject('created_by')
 */
export function isSubject(column: string): Guard {
  return new Guard({ kind: 'isSubject', column: quoteIdentifier(column, 'column') })
}

function combine(kind: 'and' | 'or', guards: readonly Guard[]): Guard {
  if (guards.length === 0 || !guards.every(isGuard)) {
    throw new ConfigurationError('KH_INVALID_OPTIONS', `${kind}() needs one or more guards`)
  }
  return new Guard({ kind, guards: Object.freeze(guards.map((g) => g.node)) })
}

/** Every guard holds. `and(isSubject('created_by'), inGroup('group_id', 'member'))` */
export function and(...guards: Guard[]): Guard {
  return combine('and', guards)
}

/** At least one guard holds. `or(isSubject('created_by'), inGroup('group_id', 'moderator'))` */
export function or(...guards: Guard[]): Guard {
  return combine('or', guards)
}

/**
 * Only an admin: `TRUE` or `FALSE` in a statement (decided when it is compiled), and
 * `(SELECT keyhole.is_admin())` in a policy.
 */
export function adminOnly(): Guard {
  return new Guard({ kind: 'adminOnly' })
}
