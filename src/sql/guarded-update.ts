/**
 * `guardedUpdate`: change only rows whose guard holds both as they are and as they will be, so an
 * update can never move a row into a group the holder does not control.
 */
import type { Capability } from '../capability/capability.ts'
import { BadRequest } from '../errors.ts'
import {
  cachedStatement,
  capabilityKey,
  StatementParams,
  type CompiledStatement,
} from './compile.ts'
import { assertGuard, type Guard } from './guard.ts'
import { assertTableName, quoteIdentifier, quoteTable } from './identifier.ts'
import type { Queryable, Row, StatementOptions } from './queryable.ts'
import { andSql, columnsOf, renderGuard, sqlText, type RowScope } from './render-guard.ts'
import { flagsSql, viewKey, type RowView } from './row-view.ts'
import { returningSql, runStatement, type Returning } from './run-statement.ts'
import { typedRow } from './typed-values.ts'
import { parseChosenKeys, setsUniqueKeySql } from './unique-keys.ts'
import { renderWhere, whereShape, type Where } from './where.ts'
import { writeOutcome, writeWithOutcome, type WriteResult } from './write-outcome.ts'

export interface GuardedUpdateOptions extends StatementOptions {
  /** The table, optionally schema-qualified. */
  readonly table: string
  /** Which rows: column → value equalities (`null` → `IS NULL`) and guard fragments. */
  readonly where: Where
  /** The new values, column → value; a key whose value is `undefined` is left out (its column kept). */
  readonly set: Row
  /** The write guard, checked on the row before and after the change. */
  readonly guard: Guard
  /** The table's read guard: decides 403 (visible) or 404 when the update is refused. */
  readonly readGuard?: Guard | undefined
  /** @default '*' */
  readonly returning?: Returning | undefined
  /**
   * Columns of a unique key `set` may change. Setting any other unique column refuses the update
   * with 400 `KH_BAD_REQUEST`, whatever its value (see guardedInsert's `chosenKeys`).
   * @default []
   */
  readonly chosenKeys?: readonly string[] | undefined
  /** @internal Column rules' per-row flags and projection (column-rules.ts). */
  readonly view?: RowView | undefined
  /**
   * @internal The database has keyhole's schema ('rls' mode): the unique-key test is answered
   * while planning (unique-keys.ts).
   */
  readonly keyholeSchema?: boolean | undefined
}

function compileUpdate(
  options: GuardedUpdateOptions,
  columns: readonly string[],
  capability: Capability,
): CompiledStatement {
  const table = quoteTable(options.table)
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const quoted = columns.map((c) => quoteIdentifier(c, 'column'))
  const values = typedRow(params, table.sql, quoted, 0)
  const set = new Set(quoted)
  const old = columnsOf('"t"')
  const next: RowScope = (column) => (set.has(column) ? `"n".${column}` : `"t".${column}`)
  for (const key of columns) {
    params.know(`"n".${quoteIdentifier(key, 'column')}`, { kind: 'field', index: 0, key })
  }
  const where = renderWhere(options.where, old, params, columns.length)
  const before = renderGuard(options.guard.node, old, params)
  const after = renderGuard(options.guard.node, next, params)
  // When the guard reads no column being set, the row "as it will be" is the row as it is.
  const guard = andSql(before === after ? [before] : [before, after])
  const read = options.readGuard ? renderGuard(options.readGuard.node, old, params) : undefined
  const listed = returningSql(options.returning ?? '*')
  const returning = listed && listed + flagsSql(options.view, old, params)
  const setsKey = setsUniqueKeySql(table, columns, options)
  const write =
    `UPDATE ${table.sql} AS "t" SET ${[...set].map((c) => `${c} = "n".${c}`).join(', ')} ` +
    `FROM ${values} AS "n" ` +
    `WHERE ${sqlText(andSql([...where, guard]))}` +
    (setsKey === undefined ? '' : ` AND NOT ${setsKey}`)
  return params.compile(writeWithOutcome(write, returning, table, where, read, setsKey))
}

/**
 * Sets `set` on the rows that match `where` and pass `guard` before and after the change. Each new
 * value is its own parameter, typed as its column by the table's row type (see typed-values.ts).
 *
 * The generated SQL for the example (non-admin; the guard holds for the row before and after),
 * pinned by test/sql/statement-text.test.ts:
 * ```sql
 * WITH "changed" AS (
 *   UPDATE "discussion_threads" AS "t" SET "title" = "n"."title", "group_id" = "n"."group_id"
 *   FROM (SELECT CASE WHEN TRUE THEN $1 ELSE (NULL::"discussion_threads")."title" END AS "title",
 *                CASE WHEN TRUE THEN $2 ELSE (NULL::"discussion_threads")."group_id" END AS "group_id") AS "n"
 *   WHERE ("t"."id" = $3 AND ("t"."group_id" = ANY ($4::uuid[]) AND "n"."group_id" = ANY ($4::uuid[])))
 *     AND NOT EXISTS (SELECT FROM pg_catalog.pg_index AS "i" …) -- a unique key set: unique-keys.ts
 *   RETURNING "t".*)
 * SELECT … -- affected, and (only if 0) found / visible: see writeWithOutcome
 * ```
 * @throws BadRequest when `set` changes a unique key not in `chosenKeys`; NotFound when no row
 * matches `where`; CapabilityDenied when rows match but none may be
 * changed (403 if the holder can read one, else 404); database errors mapped by mapDatabaseError.
 * @example
 * // moves a thread to another group: the holder must moderate both
 * const { rows: [thread] } = await guardedUpdate(pool, capability, {
 *   table: 'discussion_threads',
 *   where: { id: threadId },
 *   set: { title: 'Moved', group_id: otherGroupId },
 *   guard: inGroup('group_id', 'moderator'),
 *   readGuard: inGroup('group_id', 'member'),
 * })
 */
export async function guardedUpdate<R = Row>(
  db: Queryable,
  capability: Capability,
  options: GuardedUpdateOptions,
): Promise<WriteResult<R>> {
  assertGuard(options.guard, 'guardedUpdate')
  assertTableName(options.table) // checked on every call: the cache key must not be forgeable
  const set = options.set
  // A key whose value is `undefined` (an optional property not given) leaves its column alone.
  const columns =
    set !== null && typeof set === 'object' && !Array.isArray(set)
      ? Object.keys(set).filter((c) => set[c] !== undefined)
      : []
  if (columns.length === 0) {
    throw new BadRequest({ message: 'Nothing to update: set must name at least one column' })
  }
  for (const column of columns) quoteIdentifier(column, 'column')
  const inputs: unknown[] = columns.map((c) => set[c])
  const shape = whereShape(options.where, inputs, true)
  const returning = options.returning ?? '*'
  const key =
    `update|${options.table}|${columns.join(',')}|${shape}|${JSON.stringify(returning)}|` +
    `${options.guard.id}|${options.readGuard?.id ?? ''}|${viewKey(options.view)}|` +
    `${parseChosenKeys(options.chosenKeys).join(',')}|${capabilityKey(capability)}` +
    (options.keyholeSchema === true ? '|keyhole' : '')
  const statement = cachedStatement(key, () => compileUpdate(options, columns, capability))
  const context = { table: options.table, operation: 'update' } as const
  const rows = await runStatement(db, statement, capability, inputs, options.prepared, context, [
    set,
  ])
  return writeOutcome(
    rows,
    returning === '*' || returning.length > 0,
    options.table,
    'update',
    options.view?.project,
  ) as WriteResult<R>
}
