import type { DatabaseFinding } from '../../errors.ts'
import { finding, guardedOids, ident, rows, type Check } from './context.ts'

/**
 * Predefined roles that reach past privileges or out of the database: members read or write every
 * table (the signing key included) or the server's files and programs; signal other roles'
 * backends (pg_signal_backend); read every session's statement text and every statistic
 * (pg_read_all_stats, pg_monitor), every setting (pg_read_all_settings); run table-scanning
 * statistics functions (pg_stat_scan_tables); lock, vacuum or reindex any table (pg_maintain,
 * PostgreSQL 17); force checkpoints (pg_checkpoint); create subscriptions (pg_create_subscription).
 * Those a server version lacks simply match nothing.
 */
export const powerfulPredefinedRoles: readonly string[] = Object.freeze([
  'pg_read_all_data',
  'pg_write_all_data',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_execute_server_program',
  'pg_signal_backend',
  'pg_read_all_stats',
  'pg_read_all_settings',
  'pg_stat_scan_tables',
  'pg_monitor',
  'pg_maintain',
  'pg_checkpoint',
  'pg_create_subscription',
])

interface MembershipRow {
  rolname: string
  powers: string[]
  owner: boolean
}

/**
 * Check 2: roles the runtime role is a member of (directly or not, inherited or not) that hold a
 * power it must not have, or that own what keyhole protects: a guarded table, keyhole's functions,
 * the signing key, or the migration role itself. Their members can `SET ROLE` to them.
 *
 * The generated SQL:
 * ```sql
 * WITH owners AS (
 *   SELECT c.relowner AS oid FROM pg_class c WHERE c.oid = ANY($1::oid[]) -- guarded tables
 *   UNION SELECT p.proowner FROM unnest($2::text[]) AS s(sig) JOIN pg_proc p ON p.oid = to_regprocedure(s.sig)
 *   UNION SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass($3)
 *   UNION SELECT r.oid FROM pg_roles r WHERE r.rolname = $4)
 * SELECT r.rolname, array_remove(ARRAY[CASE WHEN r.rolsuper THEN 'SUPERUSER' END, …], NULL) AS powers,
 *        r.oid IN (SELECT oid FROM owners) AS owner
 * FROM pg_roles r
 * WHERE r.oid <> $5 AND pg_has_role(r.oid, 'MEMBER') AND (…a power… OR r.oid IN (SELECT oid FROM owners))
 * ```
 */
export const checkMemberships: Check = async (context) => {
  const { db, runtime, options } = context
  const members = await rows<MembershipRow>(
    db,
    `WITH owners AS (
       SELECT c.relowner AS oid FROM pg_class c WHERE c.oid = ANY($1::oid[]) -- guarded tables
       UNION SELECT p.proowner FROM unnest($2::text[]) AS s(sig)
         JOIN pg_proc p ON p.oid = to_regprocedure(s.sig)
       UNION SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass($3)
       UNION SELECT r.oid FROM pg_roles r WHERE r.rolname = $4
     ), powered AS (
       SELECT r.oid, r.rolname, r.oid IN (SELECT oid FROM owners) AS owner,
         array_remove(ARRAY[
           CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
           CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END,
           CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
           CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
           CASE WHEN r.rolreplication THEN 'REPLICATION' END,
           CASE WHEN r.rolname = ANY($6::text[]) THEN r.rolname::text END
         ], NULL) AS powers
       FROM pg_roles r
       WHERE r.oid <> $5::oid AND pg_has_role(r.oid, 'MEMBER')
     )
     SELECT rolname, powers, owner FROM powered
     WHERE owner OR cardinality(powers) > 0
     ORDER BY rolname`,
    [
      guardedOids(context),
      options.keyholeFunctions.map((f) => f.signature),
      options.signingKeyTable || null,
      options.migrationRole ?? null,
      runtime.oid,
      powerfulPredefinedRoles,
    ],
  )
  const findings: DatabaseFinding[] = []
  for (const m of members) {
    const revoke = `REVOKE ${ident(m.rolname)} FROM ${ident(runtime.name)};`
    if (m.powers.length > 0) {
      findings.push(
        finding(
          'KH_DB_POWERFUL_MEMBERSHIP',
          `the runtime role ${runtime.name} is a member of ${m.rolname}, which has ${m.powers.join(', ')}`,
          `${revoke} (and from any role in between)`,
        ),
      )
    }
    if (m.owner) {
      findings.push(
        finding(
          'KH_DB_MEMBER_OF_OWNER',
          `the runtime role ${runtime.name} is a member of ${m.rolname}, which owns a guarded table, keyhole's functions or the signing key, or migrates the schema: it can act as the owner and bypass row-level security`,
          `${revoke} (and from any role in between)`,
        ),
      )
    }
  }
  return findings
}
