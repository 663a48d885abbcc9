/**
 * What UPDATE and DELETE share: one statement that writes through a data-modifying CTE and, only
 * when nothing was written, also counts the rows `where` finds and how many of them the read
 * guard lets the holder see. So a denial is told apart from a missing row (403 vs 404) without a
 * second round trip and without a gap between checking and acting.
 */
import { CapabilityDenied, NotFound, type GuardedOperation } from '../errors.ts'
import type { TableName } from './identifier.ts'
import type { Row } from './queryable.ts'
import { andSql, sqlText, type Sql } from './render-guard.ts'
import { withoutBookkeeping } from './run-statement.ts'
import { uniqueKeyRefused } from './unique-keys.ts'

/** What an UPDATE or DELETE did. */
export interface WriteResult<R = Row> {
  /** The changed rows as `returning` asks (empty when it asks for none). */
  readonly rows: R[]
  /** How many rows were changed (never 0: that throws). */
  readonly count: number
}

/**
 * Wraps the data-modifying statement (aliased `"t"`, its RETURNING list `returning` or `''`):
 * ```sql
 * WITH "changed" AS (<write> RETURNING …)
 * SELECT "changed".*, "s".* FROM (
 *   SELECT "a"."affected" AS "__keyhole_affected", "f".*
 *   FROM (SELECT count(*)::int AS "affected" FROM "changed") AS "a"
 *   CROSS JOIN LATERAL (SELECT count(*)::int AS "__keyhole_found",
 *     (count(*) FILTER (WHERE <read guard>))::int AS "__keyhole_visible"
 *     FROM <table> AS "t" WHERE "a"."affected" = 0 AND <where>) AS "f") AS "s"
 * LEFT JOIN "changed" ON TRUE
 * ```
 * `"a"."affected" = 0` is a one-time filter: the counting scan runs only on the failure path.
 * `setsKey` (an UPDATE setting a unique key it may not choose, see unique-keys.ts) adds
 * `, <setsKey> AS "__keyhole_sets_key"` to the counts.
 */
export function writeWithOutcome(
  write: string,
  returning: string,
  table: TableName,
  where: readonly Sql[],
  readGuard: Sql | undefined,
  setsKey?: string,
): string {
  const visible =
    readGuard === undefined ? '0' : `(count(*) FILTER (WHERE ${sqlText(readGuard)}))::int`
  const found = sqlText(andSql(['"a"."affected" = 0', ...where]))
  return (
    `WITH "changed" AS (${write} RETURNING ${returning || '1 AS "__keyhole_one"'}) ` +
    `SELECT ${returning ? '"changed".*, ' : ''}"s".* FROM (` +
    `SELECT "a"."affected" AS "__keyhole_affected", "f".* ` +
    `FROM (SELECT count(*)::int AS "affected" FROM "changed") AS "a" ` +
    `CROSS JOIN LATERAL (SELECT count(*)::int AS "__keyhole_found", ${visible} AS "__keyhole_visible"` +
    `${setsKey === undefined ? '' : `, ${setsKey} AS "__keyhole_sets_key"`} ` +
    `FROM ${table.sql} AS "t" WHERE ${found}) AS "f") AS "s"` +
    (returning ? ' LEFT JOIN "changed" ON TRUE' : '')
  )
}

interface Outcome {
  __keyhole_affected: number
  __keyhole_found: number
  __keyhole_visible: number
  __keyhole_sets_key?: boolean
}

/**
 * The result of a statement built by {@link writeWithOutcome}.
 * @throws BadRequest when the write set a unique key it may not choose (`setsKey`, whatever the
 * rows); NotFound when `where` found no row; CapabilityDenied when it found rows but the guard
 * let none be changed (`visible` when the read guard lets the holder see one of them).
 */
export function writeOutcome(
  rows: readonly Row[],
  returns: boolean,
  table: string,
  operation: GuardedOperation,
  project: (row: Row) => Row = withoutBookkeeping,
): WriteResult {
  const outcome = rows[0] as unknown as Outcome
  if (outcome.__keyhole_affected === 0) {
    if (outcome.__keyhole_sets_key === true) throw uniqueKeyRefused(table)
    if (outcome.__keyhole_found === 0) throw new NotFound()
    throw new CapabilityDenied({ table, operation, visible: outcome.__keyhole_visible > 0 })
  }
  return {
    rows: returns ? rows.map(project) : [],
    count: outcome.__keyhole_affected,
  }
}
