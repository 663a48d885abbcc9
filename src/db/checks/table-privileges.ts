import type { DatabaseFinding } from '../../errors.ts'
import { finding, guardedOids, ident, rows, type Check } from './context.ts'

interface PrivilegeRow {
  oid: number
  extra: string[]
  grantable: string[]
}

/**
 * Check 4: privileges on a guarded table that row-level security does not filter (TRUNCATE empties
 * the table, REFERENCES probes for hidden keys, TRIGGER runs code on every row) and GRANT OPTION
 * (the runtime role could hand its rights to another role). Column-level grants count. Tables the
 * runtime role owns, or whose owner it is a member of, are left to checks 2 and 3: the owner holds
 * every privilege and the fix is the ownership.
 *
 * The generated SQL:
 * ```sql
 * SELECT c.oid,
 *   array_remove(ARRAY[CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END, …], NULL) AS extra,
 *   array_remove(ARRAY[CASE WHEN has_any_column_privilege(c.oid, 'SELECT WITH GRANT OPTION') THEN 'SELECT' END, …], NULL) AS grantable
 * FROM pg_class c WHERE c.oid = ANY($1::oid[]) AND NOT pg_has_role(c.relowner, 'MEMBER')
 * ```
 */
export const checkTablePrivileges: Check = async (context) => {
  const { db, runtime, tables } = context
  const result = await rows<PrivilegeRow>(
    db,
    `SELECT c.oid,
       array_remove(ARRAY[
         CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END,
         CASE WHEN has_any_column_privilege(c.oid, 'REFERENCES') THEN 'REFERENCES' END,
         CASE WHEN has_table_privilege(c.oid, 'TRIGGER') THEN 'TRIGGER' END
       ], NULL) AS extra,
       array_remove(ARRAY[
         CASE WHEN has_any_column_privilege(c.oid, 'SELECT WITH GRANT OPTION') THEN 'SELECT' END,
         CASE WHEN has_any_column_privilege(c.oid, 'INSERT WITH GRANT OPTION') THEN 'INSERT' END,
         CASE WHEN has_any_column_privilege(c.oid, 'UPDATE WITH GRANT OPTION') THEN 'UPDATE' END,
         CASE WHEN has_table_privilege(c.oid, 'DELETE WITH GRANT OPTION') THEN 'DELETE' END,
         CASE WHEN has_table_privilege(c.oid, 'TRUNCATE WITH GRANT OPTION') THEN 'TRUNCATE' END,
         CASE WHEN has_any_column_privilege(c.oid, 'REFERENCES WITH GRANT OPTION') THEN 'REFERENCES' END,
         CASE WHEN has_table_privilege(c.oid, 'TRIGGER WITH GRANT OPTION') THEN 'TRIGGER' END
       ], NULL) AS grantable
     FROM pg_class c
     WHERE c.oid = ANY($1::oid[]) AND NOT pg_has_role(c.relowner, 'MEMBER')
     ORDER BY c.oid`,
    [guardedOids(context)],
  )
  const names = new Map(tables.map((t) => [t.oid, t.name]))
  const findings: DatabaseFinding[] = []
  for (const row of result) {
    const table = names.get(row.oid)
    if (row.extra.length > 0) {
      findings.push(
        finding(
          'KH_DB_TABLE_PRIVILEGE',
          `the runtime role ${runtime.name} holds ${row.extra.join(', ')} on the guarded table ${table}: row-level security does not filter these`,
          `REVOKE ${row.extra.join(', ')} ON ${table} FROM ${ident(runtime.name)}; (and any column-level REFERENCES)`,
        ),
      )
    }
    if (row.grantable.length > 0) {
      findings.push(
        finding(
          'KH_DB_GRANT_OPTION',
          `the runtime role ${runtime.name} may grant ${row.grantable.join(', ')} on the guarded table ${table} to other roles`,
          `REVOKE GRANT OPTION FOR ${row.grantable.join(', ')} ON ${table} FROM ${ident(runtime.name)};`,
        ),
      )
    }
  }
  return findings
}
