/**
 * Unique keys are the database's to choose. A value the caller picks for a column of a unique
 * index (the primary key, a UNIQUE constraint or index, an exclusion constraint) is an existence
 * oracle no answer can hide: the write succeeds when no row holds the value and fails when one
 * does, whether or not the caller may see that row (PostgreSQL checks uniqueness across every row,
 * past row-level security). So a guarded INSERT or UPDATE that sets such a column is refused with
 * 400 `KH_BAD_REQUEST`, whatever the value, unless the statement names the column in `chosenKeys`
 * (accepting the oracle for it: a value taken by any row then answers 409).
 *
 * The test runs in the write's own statement, read from the catalogue (no extra round trip, and
 * never stale after a migration): it adds a one-time filter, not a per-row one. Where keyhole's
 * schema is installed ('rls' mode), the filter is `keyhole.sets_unique_key(…)`, which PostgreSQL
 * answers while planning, so a cached plan carries only the answer, planned again after any DDL on
 * the table (see sql/000005.do.keyhole-unique-keys.sql).
 */
import { BadRequest, ConfigurationError } from '../errors.ts'
import { describeInput, isIdentifier, type TableName } from './identifier.ts'

/** What a guarded write's options say about its unique-key test. */
export interface UniqueKeyOptions {
  /** The unique columns the write may set (see guardedInsert's `chosenKeys`). */
  readonly chosenKeys?: readonly string[] | undefined
  /** keyhole's schema is installed ('rls' mode): the test is `keyhole.sets_unique_key(…)`. */
  readonly keyholeSchema?: boolean | undefined
}

/** The checked `chosenKeys` option: column names, or an empty list. */
export function parseChosenKeys(chosenKeys: unknown): readonly string[] {
  if (chosenKeys === undefined) return []
  if (!Array.isArray(chosenKeys) || !chosenKeys.every(isIdentifier)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `chosenKeys must be a list of column names, got ${describeInput(chosenKeys)}`,
    )
  }
  return chosenKeys
}

/**
 * True (in SQL) when a column of `columns` not in `chosenKeys` belongs to a unique index or an
 * exclusion constraint of `table`: as a key column, or read by its expression or predicate (such
 * an index depends on those columns in `pg_depend`). `undefined` when every column is chosen.
 * ```sql
 * EXISTS (SELECT FROM pg_catalog.pg_index AS "i"
 *   WHERE "i"."indrelid" = '"posts"'::regclass AND ("i"."indisunique" OR "i"."indisexclusion")
 *     AND ("i"."indkey"::int2[] && <attnums>
 *       OR ("i"."indexprs" IS NOT NULL OR "i"."indpred" IS NOT NULL) AND EXISTS (
 *         SELECT FROM pg_catalog.pg_depend AS "d" WHERE "d"."classid" = 'pg_catalog.pg_class'::regclass
 *           AND "d"."objid" = "i"."indexrelid" AND "d"."refobjsubid" = ANY (<attnums>))))
 * -- <attnums>: ARRAY(SELECT "a"."attnum" FROM pg_catalog.pg_attribute AS "a"
 * --   WHERE "a"."attrelid" = '"posts"'::regclass AND "a"."attname" IN ('id', 'slug'))
 * ```
 * With `keyholeSchema` (installed: 'rls' mode), the same test as one call PostgreSQL evaluates
 * while planning (sql/000005):
 * ```sql
 * keyhole.sets_unique_key('"posts"'::regclass, '{"id","slug"}'::name[])
 * ```
 */
export function setsUniqueKeySql(
  table: TableName,
  columns: readonly string[],
  { chosenKeys, keyholeSchema }: UniqueKeyOptions,
): string | undefined {
  const chosen = parseChosenKeys(chosenKeys)
  const set = columns.filter((c) => !chosen.includes(c))
  if (set.length === 0) return undefined
  // Table and column names are checked identifiers (letters, digits, underscores): safe literals.
  const relation = `'${table.sql}'::regclass`
  // Each element quoted: an unquoted `null` in an array literal is NULL, not the column "null".
  if (keyholeSchema === true) {
    return `keyhole.sets_unique_key(${relation}, '{${set.map((c) => `"${c}"`).join(',')}}'::name[])`
  }
  const attnums =
    `ARRAY(SELECT "a"."attnum" FROM pg_catalog.pg_attribute AS "a" WHERE "a"."attrelid" = ${relation} ` +
    `AND "a"."attname" IN (${set.map((c) => `'${c}'`).join(', ')}))`
  return (
    `EXISTS (SELECT FROM pg_catalog.pg_index AS "i" WHERE "i"."indrelid" = ${relation} ` +
    `AND ("i"."indisunique" OR "i"."indisexclusion") AND ("i"."indkey"::int2[] && ${attnums} ` +
    `OR ("i"."indexprs" IS NOT NULL OR "i"."indpred" IS NOT NULL) AND EXISTS (` +
    `SELECT FROM pg_catalog.pg_depend AS "d" WHERE "d"."classid" = 'pg_catalog.pg_class'::regclass ` +
    `AND "d"."objid" = "i"."indexrelid" AND "d"."refobjsubid" = ANY (${attnums}))))`
  )
}

/** The refusal: the same whatever the value, so it tells nothing about the table's rows. */
export function uniqueKeyRefused(table: string): BadRequest {
  return new BadRequest({
    message: `A guarded write may not choose the value of a unique key of ${table}: let the database choose it, or name the column in chosenKeys`,
  })
}
