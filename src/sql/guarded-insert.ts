/**
 * `guardedInsert`: INSERT only the rows whose guard passes on the values being inserted, in one
 * statement, and say which rows were refused.
 */
import type { Capability } from '../capability/capability.ts'
import { BadRequest, CapabilityDenied } from '../errors.ts'
import {
  cachedStatement,
  capabilityKey,
  StatementParams,
  type CompiledStatement,
} from './compile.ts'
import { assertGuard, type Guard } from './guard.ts'
import { assertTableName, quoteIdentifier, quoteTable } from './identifier.ts'
import type { Queryable, Row, StatementOptions } from './queryable.ts'
import { renderGuard, sqlText } from './render-guard.ts'
import { returningSql, runStatement, withoutBookkeeping, type Returning } from './run-statement.ts'
import {
  suppliedScope,
  typedRow,
  typedValuesList,
  valuesCapacity,
  valuesInputs,
} from './typed-values.ts'

export interface GuardedInsertOptions extends StatementOptions {
  /** The table, optionally schema-qualified. */
  readonly into: string
  /** One row (column → value), or several with the same columns. */
  readonly values: Row | readonly Row[]
  /** Evaluated on each row as it will be inserted. */
  readonly guard: Guard
  /**
   * The table's read guard: when a row is refused, it decides whether the holder could see it
   * (403) or not (404). Without one, a refusal answers 404.
   */
  readonly readGuard?: Guard | undefined
  /**
   * What to return of each inserted row. `RETURNING` needs the table's SELECT policy too; pass
   * `[]` to return nothing.
   * @default '*'
   */
  readonly returning?: Returning | undefined
  /** Several rows: one refused row refuses all, nothing is written, and CapabilityDenied is thrown. */
  readonly atomic?: boolean | undefined
}

/** Several-row inserts of more rows than this run as unnamed statements (see guardedInsert). */
const PREPARED_ROWS = 1024

/** What a several-row insert did. */
export interface InsertResult<R = Row> {
  /** The inserted rows (as `returning` asks), in input order. */
  readonly inserted: R[]
  /** The 0-based indexes of the rows the guard refused. */
  readonly refused: number[]
  /** How many rows were inserted. */
  readonly count: number
}

function checkRows(values: unknown): { rows: readonly Row[]; columns: string[] } {
  const rows = (Array.isArray(values) ? values : [values]) as unknown[]
  const first = rows[0]
  const columns = first !== null && typeof first === 'object' ? Object.keys(first) : []
  if (rows.length > 0 && columns.length === 0) {
    throw new BadRequest({
      message: 'Each row to insert must be an object with at least one column',
    })
  }
  for (const column of columns) quoteIdentifier(column, 'column')
  for (const row of rows) {
    if (
      row === null ||
      typeof row !== 'object' ||
      Array.isArray(row) ||
      Object.keys(row).length !== columns.length ||
      !columns.every((c) => Object.hasOwn(row, c))
    ) {
      throw new BadRequest({ message: 'Every row to insert must have the same columns' })
    }
  }
  return { rows: rows as Row[], columns }
}

/** `"r"."group_id"` is the `group_id` field of the row (or of every row) being inserted. */
function knowValues(params: StatementParams, columns: readonly string[]): void {
  for (const key of columns) {
    params.know(`"r".${quoteIdentifier(key, 'column')}`, { kind: 'field', index: 0, key })
  }
}

function compileInsert(
  options: GuardedInsertOptions,
  columns: readonly string[],
  capacity: number,
  capability: Capability,
): CompiledStatement {
  const table = quoteTable(options.into)
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const count = params.input(0)
  const quoted = columns.map((c) => quoteIdentifier(c, 'column'))
  const list = typedValuesList(params, table.sql, quoted, capacity, 1)
  knowValues(params, columns)
  const scope = suppliedScope('"r"', table.sql, quoted)
  const allowed = sqlText(renderGuard(options.guard.node, scope, params))
  const visible = options.readGuard
    ? sqlText(renderGuard(options.readGuard.node, scope, params))
    : 'FALSE'
  const returning = returningSql(options.returning ?? '*')
  const atomic =
    options.atomic === true
      ? ' AND NOT EXISTS (SELECT FROM "input" WHERE NOT "__keyhole_allowed")'
      : ''
  const text =
    `WITH "input" AS (SELECT "r"."__keyhole_ord", ${quoted.map((c) => `"r".${c}`).join(', ')}, ` +
    `COALESCE(${allowed}, FALSE) AS "__keyhole_allowed", COALESCE(${visible}, FALSE) AS "__keyhole_visible" ` +
    `FROM ${list} AS "r" ("__keyhole_ord", ${quoted.join(', ')}) WHERE "r"."__keyhole_ord" <= ${count}), ` +
    `"inserted" AS (INSERT INTO ${table.sql} AS "t" (${quoted.join(', ')}) ` +
    `SELECT ${quoted.join(', ')} FROM "input" WHERE "__keyhole_allowed"${atomic} ORDER BY "__keyhole_ord"` +
    `${returning ? ` RETURNING ${returning}` : ''}) ` +
    `SELECT ${returning ? '"inserted".*, ' : ''}"s".* FROM (SELECT ` +
    `COALESCE(array_agg(("__keyhole_ord" - 1)::int ORDER BY "__keyhole_ord") FILTER (WHERE NOT "__keyhole_allowed"), '{}') AS "__keyhole_refused", ` +
    `COALESCE(bool_and("__keyhole_visible") FILTER (WHERE NOT "__keyhole_allowed"), FALSE) AS "__keyhole_visible" ` +
    `FROM "input") AS "s"${returning ? ' LEFT JOIN "inserted" ON TRUE' : ''}`
  return params.compile(text)
}

/**
 * One row with a RETURNING list takes a leaner statement (no bookkeeping CTE): the happy path is
 * one plain `INSERT … SELECT … WHERE <guard>` over the typed values (see typed-values.ts); only a
 * refused row costs a second, read-only statement, to tell 403 from 404.
 * ```sql
 * INSERT INTO "posts" AS "t" ("thread_id", "content")
 * SELECT "r"."thread_id", "r"."content"
 * FROM (SELECT COALESCE($1, (NULL::"posts")."thread_id") AS "thread_id",
 *              COALESCE($2, (NULL::"posts")."content") AS "content") AS "r"
 * WHERE EXISTS (SELECT 1 FROM "discussion_threads" AS "p1"
 *               WHERE ("p1"."id" = "r"."thread_id" AND "p1"."group_id" = ANY ($3::uuid[])))
 * RETURNING "t".*
 * ```
 */
function compileSingleInsert(
  options: GuardedInsertOptions,
  columns: readonly string[],
  capability: Capability,
): CompiledStatement {
  const table = quoteTable(options.into)
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const quoted = columns.map((c) => quoteIdentifier(c, 'column'))
  const row = typedRow(params, table.sql, quoted, 0)
  knowValues(params, columns)
  const allowed = renderGuard(options.guard.node, suppliedScope('"r"', table.sql, quoted), params)
  const text =
    `INSERT INTO ${table.sql} AS "t" (${quoted.join(', ')}) ` +
    `SELECT ${quoted.map((c) => `"r".${c}`).join(', ')} FROM ${row} AS "r"` +
    (allowed === true ? '' : ` WHERE ${sqlText(allowed)}`) +
    ` RETURNING ${returningSql(options.returning ?? '*')}`
  return params.compile(text)
}

/** Whether the read guard lets the holder see the refused row (only run on the failure path). */
function compileVisibility(
  options: GuardedInsertOptions,
  columns: readonly string[],
  readGuard: Guard,
  capability: Capability,
) {
  const table = quoteTable(options.into)
  const params = new StatementParams(capability.isAdmin, capability.groupIdType)
  const quoted = columns.map((c) => quoteIdentifier(c, 'column'))
  const row = typedRow(params, table.sql, quoted, 0)
  knowValues(params, columns)
  const visible = sqlText(
    renderGuard(readGuard.node, suppliedScope('"r"', table.sql, quoted), params),
  )
  return params.compile(`SELECT COALESCE(${visible}, FALSE) AS "visible" FROM ${row} AS "r"`)
}

async function insertOne(
  db: Queryable,
  capability: Capability,
  options: GuardedInsertOptions,
  columns: readonly string[],
  key: string,
): Promise<Row> {
  const statement = cachedStatement(key, () => compileSingleInsert(options, columns, capability))
  const context = { table: options.into, operation: 'insert' } as const
  const values = options.values as Row
  const inputs = columns.map((c) => values[c])
  const facts = [values]
  const rows = await runStatement(
    db,
    statement,
    capability,
    inputs,
    options.prepared,
    context,
    facts,
  )
  if (rows.length > 0) return rows[0] as Row
  let visible = false
  const readGuard = options.readGuard
  if (readGuard !== undefined) {
    const check = cachedStatement(`${key}|visible`, () =>
      compileVisibility(options, columns, readGuard, capability),
    )
    const [row] = await runStatement(
      db,
      check,
      capability,
      inputs,
      options.prepared,
      context,
      facts,
    )
    visible = (row as { visible: boolean }).visible
  }
  throw new CapabilityDenied({ table: options.into, operation: 'insert', visible })
}

/**
 * Inserts the rows whose `guard` passes on the values being inserted, in one statement. Each value
 * is its own parameter, typed exactly as its column by the table's row type (see typed-values.ts:
 * no catalogue look-up, no cache to invalidate when the schema changes), and the guard reads the
 * typed values.
 *
 * The generated SQL for several rows (for `inGroup('group_id', 'member')`, non-admin; the VALUES
 * list holds the next power of two of rows, so a client choosing the row count yields a handful of
 * statements, and `$1` is how many of them are real):
 * ```sql
 * WITH "input" AS (
 *   SELECT "r"."__keyhole_ord", "r"."title", "r"."group_id",
 *          COALESCE("r"."group_id" = ANY ($6::uuid[]), FALSE) AS "__keyhole_allowed", …
 *   FROM (VALUES (1, COALESCE($2, (NULL::"discussion_threads")."title"),
 *                    COALESCE($3, (NULL::"discussion_threads")."group_id")),
 *                (2, $4, $5)) AS "r" ("__keyhole_ord", "title", "group_id")
 *   WHERE "r"."__keyhole_ord" <= $1),
 * "inserted" AS (
 *   INSERT INTO "discussion_threads" AS "t" ("title", "group_id")
 *   SELECT "title", "group_id" FROM "input" WHERE "__keyhole_allowed" ORDER BY "__keyhole_ord"
 *   RETURNING "t".*)
 * SELECT "inserted".*, "s".* FROM (SELECT <refused indexes> FROM "input") AS "s"
 * LEFT JOIN "inserted" ON TRUE
 * ```
 * Columns left out of `values` take their defaults.
 *
 * @returns one row → the inserted row; several → {@link InsertResult} (partial success).
 * @throws CapabilityDenied when a single row, or any row with `atomic`, is refused (403 when the
 * holder could read the row, else 404); database errors mapped by `mapDatabaseError`.
 * @example
 * const thread = await guardedInsert(pool, capability, {
 *   into: 'discussion_threads',
 *   values: { title: 'Hello', group_id: groupId, created_by: capability.subject },
 *   guard: inGroup('group_id', 'member'),
 * })
 */
export function guardedInsert<R = Row>(
  db: Queryable,
  capability: Capability,
  options: GuardedInsertOptions & { readonly values: Row },
): Promise<R>
export function guardedInsert<R = Row>(
  db: Queryable,
  capability: Capability,
  options: GuardedInsertOptions & { readonly values: readonly Row[] },
): Promise<InsertResult<R>>
export async function guardedInsert(
  db: Queryable,
  capability: Capability,
  options: GuardedInsertOptions,
): Promise<Row | InsertResult> {
  assertGuard(options.guard, 'guardedInsert')
  const single = !Array.isArray(options.values)
  const { rows, columns } = checkRows(options.values)
  if (rows.length === 0) return { inserted: [], refused: [], count: 0 }
  const returning = options.returning ?? '*'
  assertTableName(options.into) // checked on every call: the cache key must not be forgeable
  const key =
    `insert|${options.into}|${columns.join(',')}|${JSON.stringify(returning)}|` +
    `${options.guard.id}|${options.readGuard?.id ?? ''}|${options.atomic === true}|${capabilityKey(capability)}`
  if (single && (returning === '*' || returning.length > 0)) {
    return insertOne(db, capability, options, columns, `${key}|one`)
  }
  const capacity = valuesCapacity(rows.length, columns.length)
  const statement = cachedStatement(`${key}|${capacity}`, () =>
    compileInsert(options, columns, capacity, capability),
  )
  const result = await runStatement(
    db,
    statement,
    capability,
    [rows.length, ...valuesInputs(rows, columns, capacity)],
    // A long VALUES list is planned once and dropped: kept as a named statement, its plan would
    // stay in the memory of every pooled connection that ever ran one.
    capacity > PREPARED_ROWS ? false : options.prepared,
    { table: options.into, operation: 'insert' },
    [rows],
  )
  const summary = result[0] as { __keyhole_refused: number[]; __keyhole_visible: boolean }
  const refused = summary.__keyhole_refused
  if (refused.length > 0 && (single || options.atomic === true)) {
    throw new CapabilityDenied({
      table: options.into,
      operation: 'insert',
      visible: summary.__keyhole_visible,
    })
  }
  const count = rows.length - refused.length
  const inserted =
    count > 0 && (returning === '*' || returning.length > 0) ? result.map(withoutBookkeeping) : []
  if (single) return inserted[0] ?? {}
  return { inserted, refused, count }
}
