import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'
import { schemaOf } from './names.ts'

/**
 * Check 5: the runtime role must not create objects where keyhole or the application resolve names
 * (a table or function created in a search_path schema can shadow the real one), nor in any other
 * schema (a session SET search_path, or a qualified name, reaches any of them), nor create schemas
 * in the database, nor create TEMP objects (the session's temporary schema is searched FIRST for
 * tables: a TEMP table shadows a guarded one for every later statement on the connection). The
 * schemas are every non-system schema, the search_path's, the application schemas and the schemas
 * of keyhole's functions and signing key.
 *
 * The generated SQL:
 * ```sql
 * SELECT has_database_privilege(current_database(), 'CREATE') AS database,
 *   has_database_privilege(current_database(), 'TEMP') AS temp,
 *   ARRAY(SELECT n.nspname::text FROM pg_namespace n
 *         WHERE (n.nspname = ANY($1::text[]) OR (n.nspname NOT IN ('pg_catalog', 'information_schema',
 *           'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_'))
 *           AND has_schema_privilege(n.oid, 'CREATE') ORDER BY 1) AS schemas
 * ```
 */
export const checkCreatePrivileges: Check = async ({ db, runtime, options }) => {
  const schemas = new Set([...runtime.searchPath, ...(options.applicationSchemas ?? [])])
  for (const f of options.keyholeFunctions) schemas.add(schemaOf(f.signature))
  if (options.signingKeyTable) schemas.add(schemaOf(options.signingKeyTable))
  const [row] = await rows<{ name: string; database: boolean; temp: boolean; schemas: string[] }>(
    db,
    `SELECT current_database() AS name,
       has_database_privilege(current_database(), 'CREATE') AS database,
       has_database_privilege(current_database(), 'TEMP') AS temp,
       ARRAY(SELECT n.nspname::text FROM pg_namespace n
             WHERE (n.nspname = ANY($1::text[])
                    OR (n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                        AND n.nspname !~ '^pg_(toast_)?temp_'))
               AND has_schema_privilege(n.oid, 'CREATE')
             ORDER BY 1) AS schemas`,
    [[...schemas]],
  )
  const findings: DatabaseFinding[] = []
  for (const schema of row!.schemas) {
    findings.push(
      finding(
        'KH_DB_SCHEMA_CREATE',
        `the runtime role ${runtime.name} can CREATE in schema ${schema}: it could shadow tables or functions that keyhole and the application resolve there`,
        `REVOKE CREATE ON SCHEMA ${ident(schema)} FROM ${ident(runtime.name)}, PUBLIC;`,
      ),
    )
  }
  if (row!.database) {
    findings.push(
      finding(
        'KH_DB_DATABASE_CREATE',
        `the runtime role ${runtime.name} can CREATE schemas in this database`,
        `REVOKE CREATE ON DATABASE ${ident(row!.name)} FROM ${ident(runtime.name)}, PUBLIC;`,
      ),
    )
  }
  if (row!.temp) {
    findings.push(
      finding(
        'KH_DB_DATABASE_TEMP',
        `the runtime role ${runtime.name} can create TEMP tables in this database: one shadows a guarded table of the same name for the rest of the session`,
        `REVOKE TEMPORARY ON DATABASE ${ident(row!.name)} FROM ${ident(runtime.name)}, PUBLIC;`,
      ),
    )
  }
  return findings
}
