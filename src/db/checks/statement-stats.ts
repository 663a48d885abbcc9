import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'

interface StatementStatsRow {
  schema: string
  readable: boolean
}

/**
 * Check 7b: the statistics an injection could read that an operator can close at little cost.
 * `CREATE EXTENSION pg_stat_statements` grants SELECT on its views and EXECUTE on its function to
 * PUBLIC: the runtime role then reads the text of every statement its own role ran (normalized,
 * constants as `$n`) with their call and row counts, across all requests.
 * - KH_DB_STATEMENT_STATS_READABLE: the extension is installed in this database and the runtime
 *   role may use its schema and read `pg_stat_statements` or call `pg_stat_statements(boolean)`.
 *
 * Not reported, because no grant closes them: row counts of guarded tables (`pg_class.reltuples`,
 * `pg_relation_size`, EXPLAIN estimates, and the many `pg_stat_get_*` functions behind
 * `pg_stat_user_tables`), and the statement text of the same role's other sessions
 * (`pg_stat_activity`, `pg_stat_get_backend_activity`).
 *
 * The generated SQL:
 * ```sql
 * SELECT n.nspname::text AS schema, has_schema_privilege(n.oid, 'USAGE') AND (
 *   EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = n.oid
 *     AND c.relname = 'pg_stat_statements' AND has_table_privilege(c.oid, 'SELECT'))
 *   OR EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = n.oid
 *     AND p.proname = 'pg_stat_statements' AND has_function_privilege(p.oid, 'EXECUTE'))) AS readable
 * FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'
 * ```
 */
export const checkStatementStats: Check = async ({ db, runtime }) => {
  const found = await rows<StatementStatsRow>(
    db,
    `SELECT n.nspname::text AS schema, has_schema_privilege(n.oid, 'USAGE') AND (
         EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = n.oid
           AND c.relname = 'pg_stat_statements' AND has_table_privilege(c.oid, 'SELECT'))
         OR EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = n.oid
           AND p.proname = 'pg_stat_statements' AND has_function_privilege(p.oid, 'EXECUTE'))
       ) AS readable
     FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements'`,
  )
  const findings: DatabaseFinding[] = []
  for (const { schema, readable } of found) {
    if (!readable) continue
    const s = ident(schema)
    const r = ident(runtime.name)
    findings.push(
      finding(
        'KH_DB_STATEMENT_STATS_READABLE',
        `the runtime role ${runtime.name} can read ${s}.pg_stat_statements: the text and row counts of every statement its role ran, every request's`,
        `REVOKE ALL ON ${s}.pg_stat_statements, ${s}.pg_stat_statements_info FROM PUBLIC, ${r}; REVOKE EXECUTE ON FUNCTION ${s}.pg_stat_statements(boolean), ${s}.pg_stat_statements_info() FROM PUBLIC, ${r}; GRANT SELECT ON ${s}.pg_stat_statements, ${s}.pg_stat_statements_info TO pg_read_all_stats; (keyhole setup does this when the extension is installed)`,
      ),
    )
  }
  return findings
}
