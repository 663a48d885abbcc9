/**
 * Filters: the conditions of a `where` beyond equality — comparisons, lists, LIKE, IS NULL, and
 * `or`/`and`/`not` groups — built by {@link op}. A filter is an object only `op` makes (like a
 * guard), never a plain object: a plain object in `where` stays a value compared for equality, so a
 * request body passed as a value (`{ id: req.body.id }` with `{"id": {"ne": ""}}`) can never turn
 * into an operator (the "ORM leak" of filter languages that read operators from plain objects).
 * Values reach SQL only as parameters; each filter is checked and frozen when it is built.
 */
import { BadRequest, ConfigurationError } from '../errors.ts'
import { describeInput, quoteIdentifier } from './identifier.ts'
import { isGuard } from './guard.ts'

/** The comparisons `op` takes for one column; several in one object are ANDed. */
export interface ColumnOperators<T = unknown> {
  /** `= $n`; `null` → `IS NULL`. */
  readonly eq?: T | null
  /** `<> $n` (a NULL column matches neither `eq` nor `ne`, as in SQL); `null` → `IS NOT NULL`. */
  readonly ne?: T | null
  readonly lt?: T
  readonly lte?: T
  readonly gt?: T
  readonly gte?: T
  /** `= ANY ($n)`: one array parameter. No NULL elements; `[]` matches no row. */
  readonly in?: readonly T[]
  /** `<> ALL ($n)`: one array parameter. No NULL elements; `[]` matches every row. */
  readonly notIn?: readonly T[]
  /** `LIKE $n`, `\` escaping `%` and `_` (see {@link likeContains}). */
  readonly like?: string
  /** `ILIKE $n`: LIKE ignoring case. */
  readonly ilike?: string
  /** `true` → `IS NULL`, `false` → `IS NOT NULL`. */
  readonly isNull?: boolean
}

/** The operators in the order they render (whatever the order of the keys). */
const OPERATORS = [
  'eq',
  'ne',
  'gt',
  'gte',
  'lt',
  'lte',
  'in',
  'notIn',
  'like',
  'ilike',
  'isNull',
] as const

type Operator = (typeof OPERATORS)[number]

/** One rendered comparison: `sql` with `?` for the value's parameter (none when `value` is absent). */
export interface Comparison {
  readonly operator: Operator
  /** SQL after the column: `' = '`, `' IS NULL'`, `' = ANY ('` (closed after the parameter)… */
  readonly sql: string
  /** The parameter; absent for IS [NOT] NULL. */
  readonly value?: unknown
  readonly bound: boolean
}

const SQL: Record<Exclude<Operator, 'isNull'>, string> = {
  eq: ' = ',
  ne: ' <> ',
  lt: ' < ',
  lte: ' <= ',
  gt: ' > ',
  gte: ' >= ',
  in: ' = ANY (',
  notIn: ' <> ALL (',
  like: ' LIKE ',
  ilike: ' ILIKE ',
}

/** The kinds of filter `op` builds. */
export type FilterKind = 'column' | GroupKind
/** A group of `where` objects: its key in `where` is only a label. */
export type GroupKind = 'or' | 'and' | 'not'

/**
 * A filter built by {@link op}: the comparisons on one column (the `where` key names the column),
 * or a group of `where` objects (the key is then only a label, as for a guard).
 * @typeParam T the column's type, for typed tables.
 */
export class Filter<T = unknown, K extends FilterKind = FilterKind> {
  readonly kind: K
  /** The comparisons (kind `column`). */
  readonly comparisons: readonly Comparison[]
  /** The `where` objects of a group (frozen copies). */
  readonly wheres: readonly { readonly [key: string]: unknown }[]
  /** The shape for the statement cache: operators and nulls, never values. */
  readonly shape: string
  /**
   * Phantom, for typed tables: the column type the filter compares with. A parameter type, so a
   * filter is accepted for a column whose values it can hold (`op({ ilike })`, `Filter<unknown>`,
   * fits any column; `op({ gt: 1 })`, `Filter<number>`, does not fit a string column).
   */
  declare readonly __type?: (value: T) => void

  /** @internal use {@link op}. */
  constructor(
    kind: K,
    comparisons: readonly Comparison[],
    wheres: readonly { readonly [key: string]: unknown }[],
    shape: string,
  ) {
    this.kind = kind
    this.comparisons = comparisons
    this.wheres = wheres
    this.shape = shape
    Object.freeze(this)
  }
}

/** True for a filter built by {@link op}. */
export function isFilter(value: unknown): value is Filter {
  return value instanceof Filter
}

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

function bad(message: string): BadRequest {
  return new BadRequest({ message })
}

/** A value `op` may bind: a scalar pg sends as is. */
function scalarKind(value: unknown): string | undefined {
  const type = typeof value
  if (type === 'string' || type === 'number' || type === 'bigint' || type === 'boolean') {
    return type
  }
  return value instanceof Date ? 'date' : undefined
}

function comparison(operator: Operator, value: unknown): Comparison {
  if (value === undefined) {
    throw invalid(`Filter operator ${operator} is undefined: pass a value or leave it out`)
  }
  if (operator === 'isNull') {
    if (typeof value !== 'boolean') throw bad('isNull takes true or false')
    return { operator, sql: value ? ' IS NULL' : ' IS NOT NULL', bound: false }
  }
  if ((operator === 'eq' || operator === 'ne') && value === null) {
    return { operator, sql: operator === 'eq' ? ' IS NULL' : ' IS NOT NULL', bound: false }
  }
  if (
    isGuard(value) ||
    isFilter(value) ||
    typeof value === 'function' ||
    typeof value === 'symbol'
  ) {
    throw invalid(`Filter operator ${operator} takes a value, not ${describeKind(value)}`)
  }
  if (operator === 'in' || operator === 'notIn') {
    if (!Array.isArray(value)) throw bad(`${operator} takes an array of values`)
    let kind: string | undefined
    for (const item of value as unknown[]) {
      const itemKind = scalarKind(item)
      if (itemKind === undefined) {
        throw bad(
          `${operator} takes strings, numbers, bigints, booleans or dates, not ${describeKind(item)}`,
        )
      }
      if (kind !== undefined && itemKind !== kind)
        throw bad(`${operator} mixes ${kind} and ${itemKind} values`)
      kind = itemKind
    }
    return { operator, sql: SQL[operator], value: Object.freeze([...value]), bound: true }
  }
  if (operator === 'like' || operator === 'ilike') {
    if (typeof value !== 'string') throw bad(`${operator} takes a string pattern`)
  } else if (operator !== 'eq' && operator !== 'ne' && scalarKind(value) === undefined) {
    throw bad(
      `${operator} takes a string, number, bigint, boolean or date, not ${describeKind(value)}`,
    )
  }
  return { operator, sql: SQL[operator], value, bound: true }
}

function describeKind(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (isGuard(value)) return 'a guard'
  if (isFilter(value)) return 'a filter'
  return typeof value === 'object' ? 'an object' : typeof value
}

function columnFilter<T>(operators: ColumnOperators<T>): Filter<T, 'column'> {
  if (operators === null || typeof operators !== 'object' || Array.isArray(operators)) {
    throw invalid('op takes an object of operators, e.g. op({ gte: 1 })')
  }
  if (isGuard(operators) || isFilter(operators) || operators instanceof Date) {
    throw invalid('op takes an object of operators, e.g. op({ gte: 1 })')
  }
  const keys = Object.keys(operators)
  for (const key of keys) {
    if (!(OPERATORS as readonly string[]).includes(key)) {
      throw invalid(
        `Unknown filter operator ${describeInput(key)}: expected ${OPERATORS.join(', ')}`,
      )
    }
  }
  if (keys.length === 0) throw invalid('op needs at least one operator, e.g. op({ gte: 1 })')
  const comparisons: Comparison[] = []
  let shape = '{'
  for (const operator of OPERATORS) {
    if (!Object.hasOwn(operators, operator)) continue
    const c = comparison(operator, (operators as Record<string, unknown>)[operator])
    comparisons.push(Object.freeze(c))
    shape += `${operator}${c.sql},`
  }
  return new Filter<T, 'column'>('column', Object.freeze(comparisons), [], `${shape}}`)
}

/** A frozen, null-prototype copy of a group's `where`, its keys checked. */
function copyWhere(where: unknown, kind: FilterKind): { readonly [key: string]: unknown } {
  if (
    where === null ||
    typeof where !== 'object' ||
    Array.isArray(where) ||
    isGuard(where) ||
    isFilter(where)
  ) {
    throw invalid(`op.${kind} takes where objects (column → value)`)
  }
  const keys = Object.keys(where)
  if (keys.length === 0) throw invalid(`A where object in op.${kind} must name a condition`)
  const copy: Record<string, unknown> = Object.create(null)
  for (const key of keys) {
    quoteIdentifier(key, 'where key')
    copy[key] = (where as Record<string, unknown>)[key]
  }
  return Object.freeze(copy)
}

function group<K extends GroupKind>(kind: K, wheres: readonly unknown[]): Filter<unknown, K> {
  if (wheres.length === 0) throw invalid(`op.${kind} needs at least one where object`)
  return new Filter<unknown, K>(kind, [], Object.freeze(wheres.map((w) => copyWhere(w, kind))), '')
}

/** A `where` object as a group takes it (the typed form is in policies.ts). */
export type GroupWhere = { readonly [column: string]: unknown }

/**
 * Builds a filter for `where`. `op({ … })` compares the column its key names; `op.or`, `op.and`,
 * `op.not` group `where` objects (the key is then only a label). The whole `where` stays ANDed with
 * the guard: no filter can reach a row the guard hides.
 *
 * The generated SQL, in a statement on `discussion_threads` (pinned by
 * test/sql/statement-text.test.ts):
 * ```sql
 * -- where: { created_at: op({ gte: since, lt: until }), title: op({ in: ['a', 'b'] }) }
 * "t"."created_at" >= $1 AND "t"."created_at" < $2 AND "t"."title" = ANY ($3)
 * ```
 * ```sql
 * -- where: { mine: op.or({ created_by: me }, { slug: null }) }
 * ("t"."created_by" = $1 OR "t"."slug" IS NULL)
 * ```
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for an unknown operator, an empty object or group,
 * an undefined value; BadRequest `KH_BAD_REQUEST` for a value of the wrong kind (a list that is
 * not an array or mixes types or holds NULL, a non-string pattern, `isNull` not a boolean).
 * @example
 * await request.db.select('discussion_threads', {
 *   group_id: groupId,
 *   title: op({ ilike: likeContains(query) }),
 *   created_at: op({ gte: since }),
 * })
 */
export const op: {
  <T>(operators: ColumnOperators<T>): Filter<T, 'column'>
  /** Any of the `where` objects holds: `(a OR b)`. */
  or(...wheres: readonly GroupWhere[]): Filter<unknown, 'or'>
  /** All of the `where` objects hold: `(a AND b)`. */
  and(...wheres: readonly GroupWhere[]): Filter<unknown, 'and'>
  /** The `where` object does not hold: `NOT (a)` (a NULL comparison stays NULL, as in SQL). */
  not(where: GroupWhere): Filter<unknown, 'not'>
} = Object.freeze(
  Object.assign(<T>(operators: ColumnOperators<T>) => columnFilter(operators), {
    or: (...wheres: readonly unknown[]) => group('or', wheres),
    and: (...wheres: readonly unknown[]) => group('and', wheres),
    not: (where: unknown) => group('not', [where]),
  }),
)

/** `\`, `%` and `_` escaped for a LIKE pattern (PostgreSQL's default escape character is `\`). */
export function escapeLike(text: string): string {
  if (typeof text !== 'string') throw bad('A LIKE search takes a string')
  return text.replace(/[\\%_]/g, '\\$&')
}

/**
 * A LIKE/ILIKE pattern matching values that contain `text`, with `%`, `_` and `\` in it taken
 * literally.
 * @example op({ ilike: likeContains('50%_off') }) // ILIKE '%50\%\_off%'
 */
export function likeContains(text: string): string {
  return `%${escapeLike(text)}%`
}

/**
 * A LIKE/ILIKE pattern matching values that start with `text` (taken literally).
 * @example op({ like: likePrefix('re:') }) // LIKE 're:%'
 */
export function likePrefix(text: string): string {
  return `${escapeLike(text)}%`
}
