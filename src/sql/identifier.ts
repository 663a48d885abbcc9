/**
 * SQL identifiers (table and column names) are the one part of a statement that cannot be a
 * parameter, so they are held to a strict pattern and always double-quoted. Anything else is
 * refused when the statement or guard is built, never when a request arrives.
 */
import { ConfigurationError } from '../errors.ts'

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** What an identifier names, for the error message. */
export type IdentifierKind = 'table' | 'column' | 'role' | 'where key' | 'alias'

/** A short, escaped rendering of an arbitrary input for an error message: never the whole value. */
export function describeInput(value: unknown): string {
  if (typeof value !== 'string') return typeof value
  const shown = value.length > 32 ? `${value.slice(0, 32)}…` : value
  // JSON.stringify escapes quotes, control characters and NUL bytes.
  return JSON.stringify(shown)
}

/** True when `name` is a plain identifier (letters, digits, underscores; at most 63 bytes). */
export function isIdentifier(name: unknown): name is string {
  return typeof name === 'string' && IDENTIFIER.test(name)
}

/**
 * Checks and double-quotes one identifier. Quoting keeps the case as written: `Posts` names the
 * table `"Posts"`, not `posts`.
 *
 * @example quoteIdentifier('group_id', 'column') // '"group_id"'
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER` naming the kind of identifier
 */
export function quoteIdentifier(name: unknown, kind: IdentifierKind): string {
  if (!isIdentifier(name)) {
    throw new ConfigurationError(
      'KH_INVALID_IDENTIFIER',
      `Invalid ${kind} name ${describeInput(name)}: expected letters, digits and underscores (at most 63), not starting with a digit`,
    )
  }
  return `"${name}"`
}

/** A checked table name: its quoted SQL form and the bare name that qualifies its columns. */
export interface TableName {
  /** The name as given, e.g. `forum.posts`. */
  readonly name: string
  /** Quoted, schema-qualified when given so: `"forum"."posts"`. */
  readonly sql: string
  /** The quoted relation name alone (`"posts"`), how a policy expression refers to the row. */
  readonly relation: string
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/

/**
 * Checks a table name as {@link quoteTable} does, without building its quoted form: what every
 * guarded statement runs on each call, before looking its compiled text up by that name.
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER`
 */
export function assertTableName(name: unknown): void {
  if (typeof name !== 'string' || !TABLE_NAME.test(name)) quoteTable(name)
}

/**
 * Checks a table name, optionally schema-qualified (`schema.table`).
 *
 * @example quoteTable('forum.posts').sql // '"forum"."posts"'
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER`
 */
export function quoteTable(name: unknown): TableName {
  const parts = typeof name === 'string' ? name.split('.') : []
  if (parts.length < 1 || parts.length > 2 || !parts.every(isIdentifier)) {
    throw new ConfigurationError(
      'KH_INVALID_IDENTIFIER',
      `Invalid table name ${describeInput(name)}: expected "table" or "schema.table" made of letters, digits and underscores`,
    )
  }
  const quoted = parts.map((p) => `"${p}"`)
  return Object.freeze({
    name: name as string,
    sql: quoted.join('.'),
    relation: quoted[quoted.length - 1] as string,
  })
}
