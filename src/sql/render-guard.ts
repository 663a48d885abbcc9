/**
 * Renders a guard's tree to SQL for one target: a statement (admin flag known at compile time,
 * capability values as parameters) or an RLS policy (capability values from the `keyhole`
 * functions). Constant branches fold away, so an admin statement carries no `OR $admin` and a
 * generic plan keeps the group index.
 */
import type { GuardNode } from './guard.ts'
import type { TableName } from './identifier.ts'

/** Rendered SQL, or a constant that folded at compile time. */
export type Sql = string | boolean

/** Where the capability's values come from. */
export interface GuardTarget {
  /** `true`/`false` when compiling a statement; an SQL expression in a policy. */
  readonly admin: boolean | string
  /**
   * SQL for the holder's group-ID array for `role`, already cast (`$4::uuid[]`); `column` is the
   * row expression it is compared with (a statement may narrow the array when it knows its value).
   */
  groups(role: string, column: string): string
  /** SQL for the holder's subject. */
  subject(): string
  /** Records a role whose group check folded away (admin), so that it is still validated. */
  noteRole(role: string): void
  /** Policies compare `column::text` with the text-typed `keyhole.subject()`. */
  readonly castSubjectColumn: boolean
  /**
   * A parameter the row expression `column` equals wherever the guard applies (a `where`
   * equality ANDed at the top of a statement), or undefined. A statement compares that parameter
   * with the group array instead of the column: see {@link renderGuard}'s `inGroup`.
   */
  known?(column: string): string | undefined
  /**
   * Policies only: true when the row-level security of `table` (its SELECT policy) already admits
   * exactly the rows `parent` admits, so that a `viaParent` subquery on it need not repeat the
   * condition (see policy-statements.ts).
   */
  parentEnforces?(table: TableName, parent: GuardNode): boolean
}

/** Maps one of the row's (quoted) columns to the SQL that stands for its value. */
export type RowScope = (column: string) => string

/** A row scope over a table alias or relation name: `"t"."group_id"`. */
export function columnsOf(qualifier: string): RowScope {
  return (column) => `${qualifier}.${column}`
}

/** Folds `AND`: any `false` is `false`; `true`s drop out. */
export function andSql(parts: readonly Sql[]): Sql {
  const kept: string[] = []
  for (const part of parts) {
    if (part === false) return false
    if (part !== true) kept.push(part)
  }
  if (kept.length === 0) return true
  return kept.length === 1 ? (kept[0] as string) : `(${kept.join(' AND ')})`
}

/** Folds `OR`: any `true` is `true`; `false`s drop out. */
export function orSql(parts: readonly Sql[]): Sql {
  const kept: string[] = []
  for (const part of parts) {
    if (part === true) return true
    if (part !== false) kept.push(part)
  }
  if (kept.length === 0) return false
  return kept.length === 1 ? (kept[0] as string) : `(${kept.join(' OR ')})`
}

/** The SQL text of a rendered condition. */
export function sqlText(sql: Sql): string {
  return sql === true ? 'TRUE' : sql === false ? 'FALSE' : sql
}

/**
 * Renders `node` for the row that `scope` describes. `depth` numbers the parent aliases (`"p1"`,
 * `"p2"`…) so that each level of a parent chain has its own.
 */
export function renderGuard(node: GuardNode, scope: RowScope, target: GuardTarget, depth = 0): Sql {
  switch (node.kind) {
    case 'inGroup': {
      if (target.admin === true) {
        // Folded: no group parameter, but the role must still exist in the hierarchy.
        target.noteRole(node.role)
        return true
      }
      const column = scope(node.column)
      // `"t"."group_id" = $1 AND $1 = ANY ($2)` rather than `… AND "t"."group_id" = ANY ($2)`:
      // the same rows (the column equals $1 wherever the guard applies), but the check on $1 is a
      // one-time filter, where the column form made the planner multiply two selectivities of the
      // group column, estimate one row and re-plan every execution (a custom plan each time: a
      // paginated list ran at 0.71x the same SQL without the guard, 1.00x with this form).
      const value = target.known?.(column) ?? column
      return orSql([`${value} = ANY (${target.groups(node.role, column)})`, target.admin])
    }
    case 'isSubject': {
      const column = scope(node.column)
      return `${target.castSubjectColumn ? `${column}::text` : column} = ${target.subject()}`
    }
    case 'adminOnly':
      return target.admin
    case 'and':
    case 'or': {
      const parts = node.guards.map((g) => renderGuard(g, scope, target, depth))
      return node.kind === 'and' ? andSql(parts) : orSql(parts)
    }
    case 'viaParent': {
      const alias = `"p${depth + 1}"`
      const parent =
        target.parentEnforces?.(node.table, node.parent) === true
          ? true
          : renderGuard(node.parent, columnsOf(alias), target, depth + 1)
      const where = andSql([`${alias}.${node.key} = ${scope(node.column)}`, parent])
      if (where === false) return false
      return `EXISTS (SELECT 1 FROM ${node.table.sql} AS ${alias} WHERE ${sqlText(where)})`
    }
  }
}
