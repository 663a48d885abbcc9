/**
 * `orderBy` and keyset pagination (`after`): the order's columns, checked on every call (they are
 * part of the statement's cache key), and the condition that reads the rows after a cursor.
 */
import { BadRequest, ConfigurationError } from '../errors.ts'
import type { StatementParams } from './compile.ts'
import { describeInput, quoteIdentifier } from './identifier.ts'
import type { RowScope } from './render-guard.ts'

export type SortDirection = 'asc' | 'desc'

/** `'created_at'`, or a list of columns and `[column, direction]` pairs. */
export type OrderBy = string | readonly (string | readonly [string, SortDirection])[]

/** One checked item of an `orderBy`. */
export interface OrderItem {
  readonly column: string
  /** Quoted: `"created_at"`. */
  readonly quoted: string
  readonly desc: boolean
}

/** The checked order and its shape for the cache key (`created_at:d,id:d`). */
export interface Order {
  readonly items: readonly OrderItem[]
  readonly shape: string
}

/**
 * Checks `orderBy`.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` (not a column or a non-empty list, a direction
 * other than 'asc'/'desc') or `KH_INVALID_IDENTIFIER`.
 */
export function parseOrderBy(orderBy: OrderBy): Order {
  const list = typeof orderBy === 'string' ? [orderBy] : orderBy
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'orderBy must be a column or a non-empty list',
    )
  }
  const items: OrderItem[] = []
  let shape = ''
  for (const item of list as readonly (string | readonly [string, SortDirection])[]) {
    const [column, direction = 'asc'] = typeof item === 'string' ? [item] : item
    if (direction !== 'asc' && direction !== 'desc') {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        "orderBy direction must be 'asc' or 'desc'",
      )
    }
    const quoted = quoteIdentifier(column, 'column')
    items.push({ column, quoted, desc: direction === 'desc' })
    shape += `${column}:${direction === 'desc' ? 'd' : 'a'},`
  }
  return { items, shape }
}

/** `"t"."created_at" DESC, "t"."id" DESC` */
export function orderSql(order: Order, scope: RowScope): string {
  return order.items.map((i) => `${scope(i.quoted)} ${i.desc ? 'DESC' : 'ASC'}`).join(', ')
}

/**
 * The cursor's values in the order's column order, for the statement's inputs.
 * @throws BadRequest `KH_BAD_REQUEST` when `after` is not an object holding a non-null value for
 * every order column.
 */
export function cursorValues(after: unknown, order: Order): unknown[] {
  if (after === null || typeof after !== 'object' || Array.isArray(after)) {
    throw new BadRequest({ message: 'after must be an object of the order columns’ values' })
  }
  return order.items.map(({ column }) => {
    const value = Object.hasOwn(after, column)
      ? (after as Record<string, unknown>)[column]
      : undefined
    if (value === undefined || value === null) {
      throw new BadRequest({
        message: `after.${column} is missing or null: keyset pagination needs a value for every order column`,
      })
    }
    if (typeof value === 'function' || typeof value === 'symbol') {
      throw new BadRequest({ message: `after.${column} is not a value: ${describeInput(value)}` })
    }
    return value
  })
}

/**
 * The rows strictly after the cursor in the order: inputs `first`, `first + 1`… hold the cursor's
 * values. When every column goes the same way it is one row comparison, which a composite index
 * on the order columns serves; with mixed directions a row comparison would be wrong, so it is the
 * lexicographic expansion, led by a bound on the first column.
 * ```sql
 * ("t"."created_at", "t"."id") < ($1, $2)                    -- created_at DESC, id DESC
 * ("t"."created_at" <= $1 AND ("t"."created_at" < $1         -- created_at DESC, id ASC
 *   OR ("t"."created_at" = $1 AND "t"."id" > $2)))
 * ```
 */
export function keysetSql(
  order: Order,
  scope: RowScope,
  params: StatementParams,
  first: number,
): string {
  const items = order.items
  const columns = items.map((i) => scope(i.quoted))
  const values = items.map((_, j) => params.input(first + j))
  const after = (i: OrderItem) => (i.desc ? '<' : '>')
  const head = items[0] as OrderItem
  if (items.every((i) => i.desc === head.desc)) {
    return items.length === 1
      ? `${columns[0]} ${after(head)} ${values[0]}`
      : `(${columns.join(', ')}) ${after(head)} (${values.join(', ')})`
  }
  const branches = items.map((item, j) => {
    const equal = columns.slice(0, j).map((c, k) => `${c} = ${values[k]}`)
    const branch = [...equal, `${columns[j]} ${after(item)} ${values[j]}`]
    return branch.length === 1 ? branch[0] : `(${branch.join(' AND ')})`
  })
  return `(${columns[0]} ${after(head)}= ${values[0]} AND (${branches.join(' OR ')}))`
}
