/**
 * The `encrypted` key of a table's policy: which columns keyhole seals, which of them have a blind
 * index for equality lookups, and the row key bound into each value. Checked once, in
 * `definePolicies`.
 */
import { ConfigurationError } from '../errors.ts'
import { describeInput, quoteIdentifier } from '../sql/identifier.ts'

/** An encrypted column with a blind index: `blindIndex` is the text column holding its HMAC. */
export interface BlindIndexedColumn<C extends string = string> {
  readonly column: C
  /** A column of its own (text), written by keyhole only: equality lookups compare it. */
  readonly blindIndex?: C | undefined
}

/** A column name, or a column with its blind index. */
export type EncryptedColumnDeclaration<C extends string = string> = C | BlindIndexedColumn<C>

/**
 * A table's encrypted columns: a list (the row key is the table's `id`), or the list with the row
 * key named.
 * @example
 * encrypted: ['invite_code', { column: 'email', blindIndex: 'email_index' }]
 * encrypted: { rowKey: 'code', columns: ['secret'] }
 */
export type EncryptedDeclaration<C extends string = string> =
  | readonly EncryptedColumnDeclaration<C>[]
  | {
      /** The column that identifies a row, bound into each value. @default 'id' */
      readonly rowKey?: C | undefined
      readonly columns: readonly EncryptedColumnDeclaration<C>[]
    }

/** The checked declaration, as `definePolicies` keeps it (frozen). */
export interface EncryptedTable {
  readonly rowKey: string
  readonly columns: readonly { readonly column: string; readonly blindIndex?: string }[]
}

function invalid(table: string, message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `encrypted of table ${table}: ${message}`)
}

/**
 * Checks a table's `encrypted` value: identifiers, each column once, a blind index distinct from
 * every other column named, the row key not encrypted.
 * @throws ConfigurationError `KH_INVALID_OPTIONS`, or `KH_INVALID_IDENTIFIER` for a bad name
 */
export function parseEncrypted(value: unknown, table: string): EncryptedTable {
  const object = value !== null && typeof value === 'object' && !Array.isArray(value)
  const list = object ? (value as { columns?: unknown }).columns : value
  if (object) {
    for (const key of Object.keys(value)) {
      if (key !== 'rowKey' && key !== 'columns') {
        throw invalid(table, `unknown key ${describeInput(key)}: expected rowKey and columns`)
      }
    }
  }
  const rowKey = object ? ((value as { rowKey?: unknown }).rowKey ?? 'id') : 'id'
  if (!Array.isArray(list) || list.length === 0) {
    throw invalid(table, 'must be a non-empty list of columns (or { rowKey, columns })')
  }
  quoteIdentifier(rowKey, 'column')
  const named = new Set<string>([rowKey as string])
  const name = (column: unknown, what: string): string => {
    quoteIdentifier(column, 'column')
    if (named.has(column as string)) {
      throw invalid(
        table,
        `${what} ${describeInput(column)} is named twice (the row key, each column and each blind index must differ)`,
      )
    }
    named.add(column as string)
    return column as string
  }
  const columns = list.map((entry: unknown) => {
    if (typeof entry === 'string') return Object.freeze({ column: name(entry, 'column') })
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw invalid(table, 'each entry must be a column name or { column, blindIndex }')
    }
    const keys = Object.keys(entry)
    if (!keys.every((k) => k === 'column' || k === 'blindIndex')) {
      throw invalid(table, 'each entry must be a column name or { column, blindIndex }')
    }
    const { column, blindIndex } = entry as BlindIndexedColumn
    const checked = name(column, 'column')
    return Object.freeze(
      blindIndex === undefined
        ? { column: checked }
        : { column: checked, blindIndex: name(blindIndex, 'blind index') },
    )
  })
  return Object.freeze({ rowKey: rowKey as string, columns: Object.freeze(columns) })
}
