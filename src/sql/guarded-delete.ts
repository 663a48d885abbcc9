/** `guardedDelete`: delete only the rows the guard lets the holder delete. */
import type { Capability } from '../capability/capability.ts'
import {
  cachedStatement,
  capabilityKey,
  StatementParams,
  type CompiledStatement,
} from './compile.ts'
import { assertGuard, type Guard } from './guard.ts'
import { assertTableName, quoteTable } from './identifier.ts'
import type { Queryable, Row, StatementOptions } from './queryable.ts'
import { andSql, columnsOf, renderGuard, sqlText } from './render-guard.ts'
import { flagsSql, viewKey, type RowView } from './row-view.ts'
import { returningSql, runStatement, type Returning } from './run-statement.ts'
import { renderWhere, whereShape, type Where } from './where.ts'
import { writeOutcome, writeWithOutcome, type WriteResult } from './write-outcome.ts'

export interface GuardedDeleteOptions extends StatementOptions {
  /** The table, optionally schema-qualified. */
  readonly from: string
  /** Which rows: column → value equalities (`null` → `IS NULL`) and guard fragments. */
  readonly where: Where
  /** The delete guard. */
  readonly guard: Guard
  /** The table's read guard: decides 403 (visible) or 404 when the delete is refused. */
  readonly readGuard?: Guard | undefined
  /** @default [] (nothing) */
  readonly returning?: Returning | undefined
  /** @internal Column rules' per-row flags and projection (column-rules.ts). */
  readonly view?: RowView | undefined
}

function compileDelete(options: GuardedDeleteOptions, capability: Capability): CompiledStatement {
  const table = quoteTable(options.from)
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const scope = columnsOf('"t"')
  const where = renderWhere(options.where, scope, params, 0)
  const guard = renderGuard(options.guard.node, scope, params)
  const read = options.readGuard ? renderGuard(options.readGuard.node, scope, params) : undefined
  const write = `DELETE FROM ${table.sql} AS "t" WHERE ${sqlText(andSql([...where, guard]))}`
  const returning = returningSql(options.returning ?? [])
  const list = returning && returning + flagsSql(options.view, scope, params)
  return params.compile(writeWithOutcome(write, list, table, where, read))
}

/**
 * Deletes the rows that match `where` and pass `guard`.
 *
 * The generated SQL for the example (non-admin), pinned by test/sql/statement-text.test.ts:
 * ```sql
 * WITH "changed" AS (
 *   DELETE FROM "discussion_threads" AS "t"
 *   WHERE ("t"."id" = $1 AND "t"."group_id" = ANY ($2::uuid[]))
 *   RETURNING 1 AS "__keyhole_one")
 * SELECT … -- affected, and (only if 0) found / visible: see writeWithOutcome
 * ```
 * @throws NotFound when no row matches `where`; CapabilityDenied when rows match but none may be
 * deleted (403 if the holder can read one, else 404); database errors mapped by mapDatabaseError
 * (a row other rows still refer to → Conflict).
 * @example
 * await guardedDelete(pool, capability, {
 *   from: 'discussion_threads',
 *   where: { id: threadId },
 *   guard: inGroup('group_id', 'moderator'),
 *   readGuard: inGroup('group_id', 'member'),
 * })
 */
export async function guardedDelete<R = Row>(
  db: Queryable,
  capability: Capability,
  options: GuardedDeleteOptions,
): Promise<WriteResult<R>> {
  assertGuard(options.guard, 'guardedDelete')
  assertTableName(options.from) // checked on every call: the cache key must not be forgeable
  const inputs: unknown[] = []
  const shape = whereShape(options.where, inputs, true)
  const returning = options.returning ?? []
  const key =
    `delete|${options.from}|${shape}|${JSON.stringify(returning)}|` +
    `${options.guard.id}|${options.readGuard?.id ?? ''}|${viewKey(options.view)}|` +
    capabilityKey(capability)
  const statement = cachedStatement(key, () => compileDelete(options, capability))
  const context = { table: options.from, operation: 'delete' } as const
  const rows = await runStatement(db, statement, capability, inputs, options.prepared, context)
  return writeOutcome(
    rows,
    returning === '*' || returning.length > 0,
    options.from,
    'delete',
    options.view?.project,
  ) as WriteResult<R>
}
