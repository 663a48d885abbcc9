import type { DatabaseFinding, GuardedOperation } from '../../errors.ts'
import { finding, guardedOids, ident, rows, type Check } from './context.ts'
import { functionNameOf } from './names.ts'
import { covers, policyProblems, readAppliedPolicies, type PolicyRow } from './policy-rows.ts'

interface TableRow {
  oid: number
  /** Schema-qualified whatever the search_path, as `checks.unguardedTables` takes it. */
  name: string
  parent: string | null
  partition: boolean
  rls: boolean
  forced: boolean
  /** The runtime role owns the table or is a member of its owner (it can SET ROLE to it). */
  owner_rights: boolean
  granted: GuardedOperation[]
  /** TRUNCATE, REFERENCES, TRIGGER: privileges row-level security does not filter. */
  unfiltered: string[]
  grantable: boolean
}

/** Why a table in reach is not guarded as keyhole guards its own tables; empty when it is. */
function shortfalls(t: TableRow, policies: readonly PolicyRow[], names: readonly string[]) {
  const reasons: string[] = []
  if (t.owner_rights) reasons.push('it owns the table or can SET ROLE to its owner')
  if (!t.rls) return [...reasons, 'row-level security is disabled']
  if (!t.forced) reasons.push("row-level security is not forced (the owner's role bypasses it)")
  if (t.unfiltered.length > 0) {
    reasons.push(`it holds ${t.unfiltered.join(', ')}, which row-level security does not filter`)
  }
  if (t.grantable) reasons.push('it holds GRANT OPTION')
  const own = policies.filter((p) => p.polrelid === t.oid)
  for (const operation of t.granted) {
    if (!own.some((p) => covers(p, operation))) {
      reasons.push(`it may ${operation.toUpperCase()} but no policy grants it`)
    }
  }
  for (const p of own) {
    const problems = policyProblems(p, names)
    if (problems.toPublic) reasons.push(`the policy ${p.polname} applies TO PUBLIC`)
    if (problems.alwaysTrue) {
      reasons.push(`the policy ${p.polname} lets rows pass without reading the capability`)
    }
    if (problems.weakCheck) {
      reasons.push(`the policy ${p.polname} checks new rows less strictly than old ones`)
    }
  }
  return reasons
}

/**
 * Check 11: tables the runtime role can reach (any privilege, or membership in the owner) that
 * keyhole was not told about. Such a table passes only if it meets the bar of a guarded table:
 * row-level security enabled AND forced, no ownership, no TRUNCATE, REFERENCES, TRIGGER or GRANT
 * OPTION, and for each of SELECT, INSERT, UPDATE, DELETE the runtime role holds, a permissive
 * policy that grants it, with no policy TO PUBLIC, always true or with a weaker WITH CHECK (the
 * rules of check 6). RLS merely enabled is not enough: unforced, an owner's member bypasses it;
 * an always-true policy filters nothing. A granted operation without a policy refuses every row,
 * but it is still reported: a privilege nothing may use is a mistake to revoke (or a policy to
 * write), and one bar for every table is easier to reason about than two.
 * - KH_DB_UNGUARDED_TABLE: such a table (ordinary, partitioned or foreign) in an application
 *   schema, not guarded and not listed in `unguardedTables`.
 * - KH_DB_CHILD_TABLE: such a partition or inheritance child (at any depth) of a guarded table,
 *   not itself guarded (even if listed in `unguardedTables`): queried directly, the parent's
 *   policies do not apply to it (statements through the parent need no grant on it).
 *
 * The generated SQL (then the policies of the tables found, as check 6 reads them):
 * ```sql
 * WITH RECURSIVE children(oid, root) AS (
 *   SELECT i.inhrelid, i.inhparent FROM pg_inherits i WHERE i.inhparent = ANY ($1::oid[])
 *   UNION SELECT i.inhrelid, x.root FROM children x JOIN pg_inherits i ON i.inhparent = x.oid)
 * SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, x.root::regclass::text AS parent, c.relispartition AS partition,
 *   c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, pg_has_role(c.relowner, 'MEMBER') AS owner_rights,
 *   array_remove(ARRAY[CASE WHEN has_any_column_privilege(c.oid, 'SELECT') THEN 'select' END, …], NULL) AS granted,
 *   array_remove(ARRAY[CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END, …], NULL) AS unfiltered,
 *   has_any_column_privilege(c.oid, 'SELECT WITH GRANT OPTION, …') OR has_table_privilege(c.oid, 'DELETE WITH GRANT OPTION, …') AS grantable
 * FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 * LEFT JOIN (SELECT DISTINCT ON (oid) oid, root FROM children ORDER BY oid, root) x ON x.oid = c.oid
 * WHERE c.relkind IN ('r', 'p', 'f') AND NOT (c.oid = ANY ($1::oid[]))
 *   AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
 *        OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER') OR pg_has_role(c.relowner, 'MEMBER'))
 *   AND (x.root IS NOT NULL OR (n.nspname = ANY ($2::text[])
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
     SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
       x.root::regclass::text AS parent,
       c.relispartition AS partition, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
       pg_has_role(c.relowner, 'MEMBER') AS owner_rights,
       array_remove(ARRAY[
         CASE WHEN has_any_column_privilege(c.oid, 'SELECT') THEN 'select' END,
         CASE WHEN has_any_column_privilege(c.oid, 'INSERT') THEN 'insert' END,
         CASE WHEN has_any_column_privilege(c.oid, 'UPDATE') THEN 'update' END,
         CASE WHEN has_table_privilege(c.oid, 'DELETE') THEN 'delete' END
       ], NULL) AS granted,
       array_remove(ARRAY[
         CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END,
         CASE WHEN has_any_column_privilege(c.oid, 'REFERENCES') THEN 'REFERENCES' END,
         CASE WHEN has_table_privilege(c.oid, 'TRIGGER') THEN 'TRIGGER' END
       ], NULL) AS unfiltered,
       has_any_column_privilege(c.oid, 'SELECT WITH GRANT OPTION, INSERT WITH GRANT OPTION,
         UPDATE WITH GRANT OPTION, REFERENCES WITH GRANT OPTION')
         OR has_table_privilege(c.oid, 'DELETE WITH GRANT OPTION, TRUNCATE WITH GRANT OPTION,
         TRIGGER WITH GRANT OPTION') AS grantable
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN (SELECT DISTINCT ON (oid) oid, root FROM children ORDER BY oid, root) x
       ON x.oid = c.oid
     WHERE c.relkind IN ('r', 'p', 'f') AND NOT (c.oid = ANY ($1::oid[]))
       AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
            OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER')
            OR pg_has_role(c.relowner, 'MEMBER'))
       AND (x.root IS NOT NULL OR (
         n.nspname = ANY ($2::text[])
         AND NOT EXISTS (
           SELECT 1 FROM unnest($3::text[]) AS u(name) WHERE to_regclass(u.name) = c.oid)))
     ORDER BY 2`,
    [
      guardedOids(context),
      options.applicationSchemas ?? runtime.searchPath,
      options.unguardedTables,
    ],
  )
  const signatures = options.keyholeFunctions.map((f) => f.signature)
  const policies =
    tables.length === 0
      ? []
      : await readAppliedPolicies(
          db,
          tables.map((t) => t.oid),
          signatures,
        )
  const names = signatures.map(functionNameOf)
  const findings: DatabaseFinding[] = []
  const revoke = (table: string) => `REVOKE ALL ON ${table} FROM ${ident(runtime.name)}, PUBLIC;`
  for (const t of tables) {
    const reasons = shortfalls(t, policies, names)
    if (reasons.length === 0) continue
    const why = reasons.join('; ')
    if (t.parent !== null) {
      const kind = t.partition ? 'a partition' : 'an inheritance child'
      findings.push(
        finding(
          'KH_DB_CHILD_TABLE',
          `the runtime role ${runtime.name} can reach ${t.name} directly, ${kind} of the guarded table ${t.parent}, and the parent's policies do not apply to it: ${why}`,
          `${revoke(t.name)} (statements through ${t.parent} still reach its rows), or guard it too`,
        ),
      )
    } else {
      findings.push(
        finding(
          'KH_DB_UNGUARDED_TABLE',
          `the runtime role ${runtime.name} can reach the table ${t.name}, which keyhole does not guard, without the protection keyhole requires: ${why}`,
          `guard it (list it in the guarded tables; FORCE ROW LEVEL SECURITY and policies that read the capability), ${revoke(t.name)} or, if it is meant to be shared, list ${t.name} in checks.unguardedTables (keyhole check --unguarded-table ${t.name})`,
        ),
      )
    }
  }
  return findings
}
