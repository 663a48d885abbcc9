/** `guardedCount`: how many rows match `where` among those the guard lets the holder see. */
import type { Capability } from '../capability/capability.ts'
import { cachedStatement, capabilityKey, StatementParams } from './compile.ts'
import { assertGuard, type Guard } from './guard.ts'
import { fromWhere } from './guarded-select.ts'
import { assertTableName } from './identifier.ts'
import type { Queryable, StatementOptions } from './queryable.ts'
import { runStatement } from './run-statement.ts'
import { whereShape, type Where } from './where.ts'

export interface GuardedCountOptions extends StatementOptions {
  /** The table, optionally schema-qualified. */
  readonly from: string
  /** Column → value equalities (`null` → `IS NULL`), `op` filters and guard fragments. */
  readonly where?: Where | undefined
  /** The read guard. */
  readonly guard: Guard
}

/**
 * Counts the rows that match `where` and pass `guard`: rows the holder may not see are not counted.
 *
 * The generated SQL (non-admin), pinned by test/sql/statement-text.test.ts:
 * ```sql
 * SELECT count(*) AS "count" FROM "discussion_threads" AS "t"
 * WHERE ("t"."group_id" = $1 AND $1 = ANY ($2::uuid[])) -- the group array checks $1 once
 * ```
 * @example
 * const total = await guardedCount(pool, capability, {
 *   from: 'discussion_threads',
 *   where: { group_id: groupId },
 *   guard: inGroup('group_id', 'member'),
 * })
 */
export async function guardedCount(
  db: Queryable,
  capability: Capability,
  options: GuardedCountOptions,
): Promise<number> {
  assertGuard(options.guard, 'guardedCount')
  assertTableName(options.from) // checked on every call: the cache key must not be forgeable
  const inputs: unknown[] = []
  const shape = whereShape(options.where, inputs)
  const key = `count|${options.from}|${shape}|${options.guard.id}|${capabilityKey(capability)}`
  const statement = cachedStatement(key, () => {
    const params = new StatementParams(capability.isAdmin, capability.groupIdType)
    const from = fromWhere(options.from, options.where, options.guard, params)
    return params.compile(`SELECT count(*) AS "count" ${from}`)
  })
  const rows = await runStatement(db, statement, capability, inputs, options.prepared, {
    table: options.from,
    operation: 'select',
  })
  // count(*) is a bigint, which pg returns as a string: exact below 2^53 rows.
  return Number((rows[0] as { count: string }).count)
}
