/**
 * Column rules: per table, which columns each role may read and write, and which columns no
 * runtime caller may name at all (`hidden`). Parsed and frozen here when the policies are defined;
 * enforced by the request handle and the system handle (see docs/columns.md).
 */
import { ConfigurationError } from '../errors.ts'
import { describeInput, quoteIdentifier } from './identifier.ts'

/** The columns a role may read or write: a list, or `'*'` (every column that is not hidden). */
export type ColumnList<C extends string = string> = '*' | readonly C[]

/**
 * One table's column rules. A role inherits the columns of every role below it in the hierarchy
 * (member < moderator < admin); an admin follows the rule of the highest role. A table without
 * `read` lets every reader read every column that is not hidden; without `write`, the same for
 * writes.
 */
export interface ColumnRules<C extends string = string> {
  /** Role → the columns that role may read (its own and those of the roles below it). */
  readonly read?: { readonly [role: string]: ColumnList<C> }
  /** Role → the columns an INSERT's values or an UPDATE's set may name at that role. */
  readonly write?: { readonly [role: string]: ColumnList<C> }
  /**
   * Columns no runtime caller may read or write: keyhole never names them in SQL. A table with
   * hidden columns lists its readable columns (`read`, no `'*'`): keyhole does not know the
   * table's other columns, and `SELECT *` would name the hidden ones.
   */
  readonly hidden?: readonly C[]
}

const KINDS = ['read', 'write', 'hidden']

function invalid(message: string): never {
  throw new ConfigurationError('KH_INVALID_OPTIONS', message)
}

function columnList(value: unknown, what: string): readonly string[] {
  if (!Array.isArray(value)) return invalid(`${what} must be '*' or a list of columns`)
  for (const column of value) quoteIdentifier(column, 'column')
  return Object.freeze([...new Set(value as string[])])
}

function roleRules(
  value: unknown,
  what: string,
  roles: Set<string>,
): { readonly [role: string]: ColumnList } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return invalid(`${what} must be an object of role → columns`)
  }
  const rules: Record<string, ColumnList> = Object.create(null)
  for (const [role, list] of Object.entries(value)) {
    quoteIdentifier(role, 'role')
    roles.add(role)
    rules[role] = list === '*' ? '*' : columnList(list, `${what}.${role}`)
  }
  return Object.freeze(rules)
}

/**
 * A table's `columns`, checked and frozen; the roles it names are added to `roles` (checked
 * against the hierarchy when the policies are bound).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for an unknown key, a rule that is not role →
 * `'*'` or a list, a hidden column also readable or writable, or hidden columns without explicit
 * read lists; `KH_INVALID_IDENTIFIER` for a bad column or role name.
 */
export function parseColumnRules(value: unknown, table: string, roles: Set<string>): ColumnRules {
  const what = `The columns of table ${table}`
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return invalid(`${what} must be { read?, write?, hidden? }`)
  }
  const rules: { -readonly [K in keyof ColumnRules]: ColumnRules[K] } = {}
  for (const [kind, rule] of Object.entries(value)) {
    if (!KINDS.includes(kind)) {
      invalid(
        `Unknown key ${describeInput(kind)} in ${what.toLowerCase()}: expected read, write or hidden`,
      )
    }
    if (kind === 'hidden') rules.hidden = columnList(rule, `${what}: hidden`)
    else rules[kind as 'read' | 'write'] = roleRules(rule, `${what}: ${kind}`, roles)
  }
  const hidden = rules.hidden ?? []
  if (hidden.length > 0) {
    if (rules.read === undefined || Object.values(rules.read).includes('*')) {
      invalid(
        `${what}: a table with hidden columns must list its readable columns (read, without '*'): keyhole cannot enumerate the other columns`,
      )
    }
    for (const kind of ['read', 'write'] as const) {
      for (const [role, list] of Object.entries(rules[kind] ?? {})) {
        const named = list === '*' ? undefined : list.find((c) => hidden.includes(c))
        if (named !== undefined) {
          invalid(`${what}: the hidden column ${named} is also in ${kind}.${role}`)
        }
      }
    }
  }
  return Object.freeze(rules)
}
