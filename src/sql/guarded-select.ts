/** `guardedSelect`: read only the rows the guard lets the holder see. */
import type { Capability } from '../capability/capability.ts'
import { BadRequest, ConfigurationError } from '../errors.ts'
import {
  capabilityKey,
  findStatement,
  keepStatement,
  StatementParams,
  type CompiledStatement,
} from './compile.ts'
import { assertGuard, type Guard } from './guard.ts'
import { assertTableName, quoteIdentifier, quoteTable } from './identifier.ts'
import {
  cursorValues,
  keysetSql,
  orderSql,
  parseOrderBy,
  type Order,
  type OrderBy,
} from './order-by.ts'
import type { Queryable, Row, StatementOptions } from './queryable.ts'
import { andSql, columnsOf, renderGuard, sqlText, type RowScope } from './render-guard.ts'
import { flagsSql, viewKey, type RowView } from './row-view.ts'
import { runStatement } from './run-statement.ts'
import { renderWhere, whereShape, type Where } from './where.ts'

export type { OrderBy, SortDirection } from './order-by.ts'

export interface GuardedSelectOptions extends StatementOptions {
  /** The table, optionally schema-qualified. */
  readonly from: string
  /** Column → value equalities (`null` → `IS NULL`), `op` filters and guard fragments. */
  readonly where?: Where | undefined
  /** @default '*' */
  readonly columns?: '*' | readonly string[] | undefined
  readonly orderBy?: OrderBy | undefined
  /** A non-negative integer (a parameter, so one statement serves every page size). */
  readonly limit?: number | undefined
  /** Rows to skip: a non-negative integer (a parameter). */
  readonly offset?: number | undefined
  /**
   * Keyset pagination: the rows strictly after this cursor in `orderBy`'s order. An object with a
   * non-null value for every order column (the last row of the previous page will do).
   */
  readonly after?: object | undefined
  /** The read guard. */
  readonly guard: Guard
  /** @internal Column rules' per-row flags and projection (column-rules.ts). */
  readonly view?: RowView | undefined
}

/** A non-negative safe integer, or 400 `KH_BAD_REQUEST` naming `name`. */
export function pageSize(value: unknown, name: 'limit' | 'offset'): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new BadRequest({ message: `${name} must be a non-negative integer` })
  }
  return value as number
}

/** `"t".*` or `"t"."id", "t"."title"`. */
function columnList(columns: '*' | readonly string[]): string {
  if (columns === '*') return '"t".*'
  if (!Array.isArray(columns) || columns.length === 0) {
    throw new ConfigurationError('KH_INVALID_OPTIONS', "columns must be '*' or a non-empty list")
  }
  return columns.map((c) => `"t".${quoteIdentifier(c, 'column')}`).join(', ')
}

/** `FROM <table> AS "t" WHERE <where> AND <guard>` (and the cursor), shared with guardedCount. */
export function fromWhere(
  table: string,
  where: Where | undefined,
  guard: Guard,
  params: StatementParams,
  keyset?: (scope: RowScope) => string,
): string {
  const scope = columnsOf('"t"')
  const condition = andSql([
    ...renderWhere(where, scope, params, 0),
    ...(keyset === undefined ? [] : [keyset(scope)]),
    renderGuard(guard.node, scope, params),
  ])
  const text = `FROM ${quoteTable(table).sql} AS "t"`
  return condition === true ? text : `${text} WHERE ${sqlText(condition)}`
}

function compileSelect(
  options: GuardedSelectOptions,
  order: Order | undefined,
  inputs: { where: number; limit: boolean; offset: boolean },
  capability: Capability,
): CompiledStatement {
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const list = columnList(options.columns ?? '*') + flagsSql(options.view, columnsOf('"t"'), params)
  const keyset =
    options.after === undefined
      ? undefined
      : (scope: RowScope) => keysetSql(order as Order, scope, params, inputs.where)
  let text = `SELECT ${list} ${fromWhere(options.from, options.where, options.guard, params, keyset)}`
  if (order !== undefined) text += ` ORDER BY ${orderSql(order, columnsOf('"t"'))}`
  let next = inputs.where + (keyset === undefined ? 0 : (order as Order).items.length)
  if (inputs.limit) text += ` LIMIT ${params.input(next++)}`
  if (inputs.offset) text += ` OFFSET ${params.input(next)}`
  return params.compile(text)
}

/**
 * Reads the rows that match `where` and pass `guard`; rows the holder may not see are simply not
 * there.
 *
 * The generated SQL for the example (non-admin; for an admin the guard folds away), pinned by
 * test/sql/statement-text.test.ts:
 * ```sql
 * SELECT "t".* FROM "discussion_threads" AS "t"
 * WHERE ("t"."group_id" = $1 AND $1 = ANY ($2::uuid[])) -- the group array checks $1 once
 * ORDER BY "t"."created_at" DESC LIMIT $3
 * ```
 * @example
 * const threads = await guardedSelect(pool, capability, {
 *   from: 'discussion_threads',
 *   where: { group_id: groupId },
 *   orderBy: [['created_at', 'desc']],
 *   limit: 50,
 *   guard: inGroup('group_id', 'member'),
 * })
 */
export function guardedSelect<R = Row>(
  db: Queryable,
  capability: Capability,
  options: GuardedSelectOptions,
): Promise<R[]> {
  const inputs: unknown[] = []
  let statement: CompiledStatement
  try {
    statement = selectStatement(capability, options, inputs)
  } catch (error) {
    return Promise.reject(error as Error) // a promise either way: bad options reject, never throw
  }
  // Not an async function: one promise less per call, the query's own (with the view's flags:
  // the handle projects them away).
  return runStatement(db, statement, capability, inputs, options.prepared, {
    table: options.from,
    operation: 'select',
  }) as Promise<R[]>
}

/** Checks the options, pushes the inputs in parameter order, and finds or compiles the statement. */
function selectStatement(
  capability: Capability,
  options: GuardedSelectOptions,
  inputs: unknown[],
): CompiledStatement {
  assertGuard(options.guard, 'guardedSelect')
  assertTableName(options.from) // checked on every call: the cache key must not be forgeable
  const shape = whereShape(options.where, inputs)
  const order = options.orderBy === undefined ? undefined : parseOrderBy(options.orderBy)
  const whereInputs = inputs.length
  if (options.after !== undefined) {
    if (order === undefined) {
      throw new ConfigurationError('KH_INVALID_OPTIONS', 'after needs orderBy: the order it pages')
    }
    inputs.push(...cursorValues(options.after, order))
  }
  const limit = options.limit !== undefined
  const offset = options.offset !== undefined
  if (limit) inputs.push(pageSize(options.limit, 'limit'))
  if (offset) inputs.push(pageSize(options.offset, 'offset'))
  // Few fresh pieces: the key is built and hashed on every call. `after`, limit and offset as the
  // letters a, l, o; the columns as JSON unless '*' (a list always starts with `[`).
  const columns = options.columns
  const key =
    `select|${options.from}|${shape}|${columns === undefined || columns === '*' ? '*' : JSON.stringify(columns)}|` +
    `${order === undefined ? '' : order.shape}|${options.after === undefined ? '' : 'a'}${limit ? 'l' : ''}${offset ? 'o' : ''}|` +
    `${options.guard.id}|${viewKey(options.view)}|${capabilityKey(capability)}`
  return (
    findStatement(key) ??
    keepStatement(
      key,
      compileSelect(options, order, { where: whereInputs, limit, offset }, capability),
    )
  )
}
