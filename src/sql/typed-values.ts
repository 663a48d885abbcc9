/**
 * Values a statement writes, as parameters typed exactly like the columns they go to, without a
 * catalogue look-up: `CASE WHEN TRUE THEN $1 ELSE (NULL::"posts")."thread_id" END` is `$1`, typed
 * by PostgreSQL as the column's type (the table's row type knows it: a CASE gives its branches one
 * type, and an untyped parameter takes it). The planner folds the CASE to the bare `$1` (a
 * constant-true first branch is the whole CASE), so the statement costs what a hand-written
 * `INSERT … VALUES ($1::uuid, …)` costs, and a guard comparing the value with a key is an index
 * condition even under row-level security.
 *
 * Why not `COALESCE($1, (NULL::t).col)` (what keyhole did before): the planner folds it only to
 * `COALESCE($1)`, which it does not know to be leakproof, so under a policy (a security barrier) it
 * cannot run before the policy's qual: a parent guard's `p1.id = COALESCE($1)` was a filter over
 * every row of the holder's groups (a bitmap scan on the group index) instead of a primary-key
 * look-up, measured 0.44–0.46× a plain INSERT at 10 000 groups.
 *
 * Why not untyped `SELECT $1, $2 WHERE <guard>`: the guard compares the values with other
 * parameters (the subject, a parent key), and PostgreSQL would type a parameter from the first
 * comparison it meets (`text` for `$2 = $5`) and then refuse it for a `uuid` column. Why not one
 * `json` parameter read with `json_populate_record` (what keyhole did before): parsing the JSON
 * cost 5–7% of a single-row INSERT, measured side by side on PostgreSQL 18.
 *
 * Values are bound as pg binds them in any query (a Buffer as `bytea`, a Date as a timestamp, an
 * array as an array literal, an object as JSON text).
 */
import { BadRequest } from '../errors.ts'
import type { StatementParams } from './compile.ts'
import type { RowScope } from './render-guard.ts'

/**
 * PostgreSQL takes at most 65 535 parameters in one statement; keep room for the capability's.
 * A larger insert is refused with a clear 400 rather than split behind the caller's back.
 */
export const MAX_VALUES = 65_000

/** `CASE WHEN TRUE THEN <input> ELSE (NULL::<table>).<column> END`: the `index`th input, typed as the column. */
export function typedInput(
  params: StatementParams,
  table: string,
  column: string,
  index: number,
): string {
  return `CASE WHEN TRUE THEN ${params.input(index)} ELSE (NULL::${table}).${column} END`
}

/**
 * A one-row relation of the values, typed as the columns: `(SELECT CASE WHEN TRUE THEN $1 ELSE … END AS "a", …)`.
 * Its `j`th column is the input `first + j`.
 */
export function typedRow(
  params: StatementParams,
  table: string,
  columns: readonly string[],
  first: number,
): string {
  const items = columns.map((c, j) => `${typedInput(params, table, c, first + j)} AS ${c}`)
  return `(SELECT ${items.join(', ')})`
}

/** The next power of two at or above `n` (at least 2). */
function bucket(n: number): number {
  let size = 2
  while (size < n) size *= 2
  return size
}

/**
 * How many rows the VALUES list of a several-row statement holds for `rows` rows: the next power
 * of two, so that request input (how many rows a client sends) yields a handful of statement
 * texts per column set, never one prepared statement per row count.
 *
 * @throws BadRequest when the rows hold more than {@link MAX_VALUES} values.
 */
export function valuesCapacity(rows: number, columns: number): number {
  const limit = Math.floor(MAX_VALUES / columns)
  if (rows > limit) {
    throw new BadRequest({
      message: `Too many values in one insert: at most ${limit} rows of ${columns} columns (${MAX_VALUES} values); split it`,
    })
  }
  return Math.min(bucket(rows), limit)
}

/**
 * A VALUES list of `capacity` rows, each `(<ordinal>, <values…>)`, whose first row types every
 * column as the table does (PostgreSQL types the other rows' parameters from it). The value of row
 * `i`, column `j` is the input `first + i × columns + j`; rows past the request's are bound to NULL
 * and filtered out by their ordinal.
 */
export function typedValuesList(
  params: StatementParams,
  table: string,
  columns: readonly string[],
  capacity: number,
  first: number,
): string {
  const rows: string[] = []
  for (let i = 0; i < capacity; i++) {
    const values = columns.map((c, j) => {
      const index = first + i * columns.length + j
      return i === 0 ? typedInput(params, table, c, index) : params.input(index)
    })
    rows.push(`(${i + 1}, ${values.join(', ')})`)
  }
  return `(VALUES ${rows.join(', ')})`
}

/** The inputs of {@link typedValuesList}: row-major values, NULL past the request's rows. */
export function valuesInputs(
  rows: readonly Record<string, unknown>[],
  columns: readonly string[],
  capacity: number,
): unknown[] {
  const inputs: unknown[] = new Array(capacity * columns.length).fill(null)
  let at = 0
  for (const row of rows) for (const column of columns) inputs[at++] = row[column]
  return inputs
}

/**
 * The row a guard reads, over the typed values aliased `alias`: a column the caller did not supply
 * reads as NULL of its type (`(NULL::"posts")."group_id"`), so a guard on it refuses the row
 * rather than failing, whatever default the column would take.
 */
export function suppliedScope(alias: string, table: string, supplied: readonly string[]): RowScope {
  const columns = new Set(supplied)
  return (column) => (columns.has(column) ? `${alias}.${column}` : `(NULL::${table}).${column}`)
}
