/** `guardedSelect`: read only the rows the guard lets the holder see. */
import type { Capability } from '../capability/capability.ts'
import { BadRequest, ConfigurationError } from '../errors.ts'
import {
  cachedStatement,
  capabilityKey,
  StatementParams,
  type CompiledStatement,
} from './compile.ts'
import { assertGuard, type Guard } from './guard.ts'
import { assertTableName, quoteIdentifier, quoteTable } from './identifier.ts'
import type { Queryable, Row, StatementOptions } from './queryable.ts'
import { andSql, columnsOf, renderGuard, sqlText } from './render-guard.ts'
import { runStatement } from './run-statement.ts'
import { renderWhere, whereShape, type Where } from './where.ts'

export type SortDirection = 'asc' | 'desc'

/** `'created_at'`, or a list of columns and `[column, direction]` pairs. */
export type OrderBy = string | readonly (string | readonly [string, SortDirection])[]

export interface GuardedSelectOptions extends StatementOptions {
  /** The table, optionally schema-qualified. */
  readonly from: string
  /** Column → value equalities (`null` → `IS NULL`) and guard fragments. */
  readonly where?: Where | undefined
  /** @default '*' */
  readonly columns?: '*' | readonly string[] | undefined
  readonly orderBy?: OrderBy | undefined
  /** A non-negative integer (a parameter, so one statement serves every page size). */
  readonly limit?: number | undefined
  /** The read guard. */
  readonly guard: Guard
}

function orderBySql(orderBy: OrderBy): string {
  const items = typeof orderBy === 'string' ? [orderBy] : orderBy
  if (!Array.isArray(items) || items.length === 0) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'orderBy must be a column or a non-empty list',
    )
  }
  return items
    .map((item: string | readonly [string, SortDirection]) => {
      const [column, direction = 'asc'] = typeof item === 'string' ? [item] : item
      if (direction !== 'asc' && direction !== 'desc') {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          "orderBy direction must be 'asc' or 'desc'",
        )
      }
      return `"t".${quoteIdentifier(column, 'column')} ${direction.toUpperCase()}`
    })
    .join(', ')
}

function compileSelect(options: GuardedSelectOptions, capability: Capability): CompiledStatement {
  const table = quoteTable(options.from)
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const scope = columnsOf('"t"')
  const columns = options.columns ?? '*'
  const list =
    columns === '*' ? '"t".*' : columns.map((c) => `"t".${quoteIdentifier(c, 'column')}`).join(', ')
  const where = andSql([
    ...renderWhere(options.where, scope, params, 0),
    renderGuard(options.guard.node, scope, params),
  ])
  let text = `SELECT ${list} FROM ${table.sql} AS "t"`
  if (where !== true) text += ` WHERE ${sqlText(where)}`
  if (options.orderBy !== undefined) text += ` ORDER BY ${orderBySql(options.orderBy)}`
  if (options.limit !== undefined) {
    // The limit is the last input, after the where values.
    text += ` LIMIT ${params.input(params.inputs)}`
  }
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
 * WHERE ("t"."group_id" = $1 AND "t"."group_id" = ANY ($2::uuid[]))
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
export async function guardedSelect<R = Row>(
  db: Queryable,
  capability: Capability,
  options: GuardedSelectOptions,
): Promise<R[]> {
  assertGuard(options.guard, 'guardedSelect')
  assertTableName(options.from) // checked on every call: the cache key must not be forgeable
  const inputs: unknown[] = []
  const shape = whereShape(options.where, inputs)
  if (options.limit !== undefined) {
    if (!Number.isSafeInteger(options.limit) || options.limit < 0) {
      throw new BadRequest({ message: 'limit must be a non-negative integer' })
    }
    inputs.push(options.limit)
  }
  const key =
    `select|${options.from}|${shape}|${JSON.stringify(options.columns ?? '*')}|` +
    `${JSON.stringify(options.orderBy ?? null)}|${options.limit !== undefined}|` +
    `${options.guard.id}|${capabilityKey(capability)}`
  const statement = cachedStatement(key, () => compileSelect(options, capability))
  const rows = await runStatement(db, statement, capability, inputs, options.prepared, {
    table: options.from,
    operation: 'select',
  })
  return rows as R[]
}
