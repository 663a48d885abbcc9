/**
 * What `migrate`'s policies step takes away from the runtime role on hidden columns: the
 * privileges it held on them by its own grants (a table-level grant reaches every column), which
 * the column grants of the policy SQL replace (see render-column-grants.ts). Read on the migration
 * connection just before that step, for the tables that existed before the application's
 * migrations ran (as the other repairs of migrate-repairs.ts).
 */
import type { Policies } from '../sql/policies.ts'
import { hiddenColumnsOf } from '../sql/render-column-grants.ts'
import { quoteIdentifier } from '../sql/identifier.ts'
import type { CheckQueryable } from './checks/context.ts'
import { guardedTableOids, type MigrateRepair } from './migrate-repairs.ts'

/**
 * KH_DB_COLUMN_PRIVILEGE repairs: each hidden column of a table that existed before the run (its
 * oid in `before`, see `guardedTableOids`) on which the runtime role holds a privilege granted to
 * it directly.
 *
 * ```sql
 * SELECT e.tab, a.attname::text AS column, array_agg(DISTINCT x.privilege_type ORDER BY x.privilege_type) AS privileges
 * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (tab text, oid oid, cols text[])) WITH ORDINALITY AS e(tab, oid, cols, n)
 * JOIN pg_attribute a ON a.attrelid = e.oid AND a.attname = ANY (e.cols) AND a.attnum > 0 AND NOT a.attisdropped
 * CROSS JOIN LATERAL (SELECT … FROM aclexplode(<the table's ACL>) UNION ALL SELECT … FROM aclexplode(a.attacl)) x
 * WHERE x.grantee = $2::regrole AND x.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
 * ```
 */
export async function columnPrivilegeRepairs(
  db: CheckQueryable,
  policies: Policies,
  runtimeRole: string,
  before: readonly (number | undefined)[],
): Promise<MigrateRepair[]> {
  const hidden = hiddenColumnsOf(policies)
  if (hidden.length === 0) return []
  const now = await guardedTableOids(db, policies)
  const names = Object.keys(policies.tables)
  const tables = hidden.flatMap(({ table, columns }) => {
    const i = names.indexOf(table)
    return before[i] !== undefined && before[i] === now[i]
      ? [{ tab: table, oid: before[i], cols: columns }]
      : []
  })
  const { rows } = await db.query(
    `SELECT e.tab, a.attname::text AS column,
       array_agg(DISTINCT x.privilege_type ORDER BY x.privilege_type) AS privileges
     FROM ROWS FROM (pg_catalog.jsonb_to_recordset($1::jsonb) AS (tab text, oid oid, cols text[]))
       WITH ORDINALITY AS e(tab, oid, cols, n)
     JOIN pg_catalog.pg_attribute a ON a.attrelid = e.oid AND a.attname = ANY (e.cols)
       AND a.attnum > 0 AND NOT a.attisdropped
     CROSS JOIN LATERAL (
       SELECT t.grantee, t.privilege_type FROM pg_catalog.pg_class c,
         pg_catalog.aclexplode(c.relacl) AS t WHERE c.oid = e.oid
       UNION ALL
       SELECT t.grantee, t.privilege_type FROM pg_catalog.aclexplode(a.attacl) AS t) x
     WHERE x.grantee = $2::pg_catalog.regrole
       AND x.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
     GROUP BY e.n, e.tab, a.attnum, a.attname ORDER BY e.n, a.attnum`,
    [JSON.stringify(tables), quoteIdentifier(runtimeRole, 'role')],
  )
  return (rows as { tab: string; column: string; privileges: string[] }[]).map((row) => ({
    code: 'KH_DB_COLUMN_PRIVILEGE',
    message: `the runtime role "${runtimeRole}" held ${row.privileges.join(', ')} on the hidden column ${row.column} of ${row.tab}: revoked (its other columns granted one by one)`,
  }))
}
