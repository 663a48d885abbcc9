import type { DatabaseFinding } from '../../errors.ts'
import { finding, guardedOids, ident, rows, type Check } from './context.ts'

interface TableRow {
  name: string
  parent: string | null
  partition: boolean
}

/**
 * Check 11: tables the runtime role can reach that row-level security does not cover.
 * - KH_DB_UNGUARDED_TABLE: a table (ordinary, partitioned or foreign) in an application schema,
 *   not guarded, not listed in `unguardedTables`, without row-level security enabled, on which the
 *   runtime role holds any privilege.
 * - KH_DB_CHILD_TABLE: a partition or inheritance child (at any depth) of a guarded table that is
 *   not itself guarded and on which the runtime role holds any privilege: queried directly, the
 *   parent's policies do not apply to it (statements through the parent need no grant on it).
 *
 * The generated SQL:
 * ```sql
 * WITH RECURSIVE children(oid, root) AS (
 *   SELECT i.inhrelid, i.inhparent FROM pg_inherits i WHERE i.inhparent = ANY ($1::oid[])
 *   UNION SELECT i.inhrelid, x.root FROM children x JOIN pg_inherits i ON i.inhparent = x.oid)
 * SELECT c.oid::regclass::text AS name, x.root::regclass::text AS parent, c.relispartition AS partition
 * FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 * LEFT JOIN (SELECT DISTINCT ON (oid) oid, root FROM children ORDER BY oid, root) x ON x.oid = c.oid
 * WHERE c.relkind IN ('r', 'p', 'f') AND NOT (c.oid = ANY ($1::oid[]))
 *   AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
 *        OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER'))
 *   AND (x.root IS NOT NULL OR (n.nspname = ANY ($2::text[]) AND NOT c.relrowsecurity
 *        AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS u(name) WHERE to_regclass(u.name) = c.oid)))
 * ```
 */
export const checkUnguardedTables: Check = async (context) => {
  const { db, runtime, options } = context
  const tables = await rows<TableRow>(
    db,
    `WITH RECURSIVE children(oid, root) AS (
       SELECT i.inhrelid, i.inhparent FROM pg_inherits i WHERE i.inhparent = ANY ($1::oid[])
       UNION
       SELECT i.inhrelid, x.root FROM children x JOIN pg_inherits i ON i.inhparent = x.oid
     )
     SELECT c.oid::regclass::text AS name, x.root::regclass::text AS parent,
       c.relispartition AS partition
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN (SELECT DISTINCT ON (oid) oid, root FROM children ORDER BY oid, root) x
       ON x.oid = c.oid
     WHERE c.relkind IN ('r', 'p', 'f') AND NOT (c.oid = ANY ($1::oid[]))
       AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
            OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER'))
       AND (x.root IS NOT NULL OR (
         n.nspname = ANY ($2::text[]) AND NOT c.relrowsecurity
         AND NOT EXISTS (
           SELECT 1 FROM unnest($3::text[]) AS u(name) WHERE to_regclass(u.name) = c.oid)))
     ORDER BY 1`,
    [
      guardedOids(context),
      options.applicationSchemas ?? runtime.searchPath,
      options.unguardedTables,
    ],
  )
  const findings: DatabaseFinding[] = []
  const revoke = (table: string) => `REVOKE ALL ON ${table} FROM ${ident(runtime.name)}, PUBLIC;`
  for (const t of tables) {
    if (t.parent !== null) {
      const kind = t.partition ? 'a partition' : 'an inheritance child'
      findings.push(
        finding(
          'KH_DB_CHILD_TABLE',
          `the runtime role ${runtime.name} can reach ${t.name} directly, ${kind} of the guarded table ${t.parent}: the parent's policies do not apply to it`,
          `${revoke(t.name)} (statements through ${t.parent} still reach its rows), or guard it too`,
        ),
      )
    } else {
      findings.push(
        finding(
          'KH_DB_UNGUARDED_TABLE',
          `the runtime role ${runtime.name} can reach the table ${t.name} without row-level security`,
          `guard it (ALTER TABLE ${t.name} ENABLE ROW LEVEL SECURITY; and policies), ${revoke(t.name)} or list it in unguardedTables if it is meant to be shared`,
        ),
      )
    }
  }
  return findings
}
