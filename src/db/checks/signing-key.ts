import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'

/**
 * Check 12: whoever holds the capability-signing key can mint a capability, so the runtime role
 * must hold no privilege at all on its table (only keyhole's SECURITY DEFINER functions read it),
 * and the runtime role must not be the migration role.
 *
 * The generated SQL:
 * ```sql
 * SELECT to_regclass($1) IS NOT NULL AS found,
 *   coalesce(has_any_column_privilege(to_regclass($1), 'SELECT, INSERT, UPDATE, REFERENCES')
 *     OR has_table_privilege(to_regclass($1), 'DELETE, TRUNCATE, TRIGGER'), false) AS reachable
 * ```
 */
export const checkSigningKey: Check = async ({ db, runtime, options }) => {
  const findings: DatabaseFinding[] = []
  if (options.migrationRole === runtime.name) {
    findings.push(
      finding(
        'KH_DB_RUNTIME_IS_MIGRATION_ROLE',
        `the application connects as the migration role ${runtime.name}, which owns the schema`,
        'connect the application as the runtime role; keep the migration role for `keyhole setup` and `keyhole migrate`',
      ),
    )
  }
  const table = options.signingKeyTable
  if (table === false) return findings
  const [key] = await rows<{ found: boolean; reachable: boolean }>(
    db,
    `SELECT to_regclass($1) IS NOT NULL AS found,
       coalesce(has_any_column_privilege(to_regclass($1), 'SELECT, INSERT, UPDATE, REFERENCES')
         OR has_table_privilege(to_regclass($1), 'DELETE, TRUNCATE, TRIGGER'), false) AS reachable`,
    [table],
  )
  if (!key!.found) {
    findings.push(
      finding(
        'KH_DB_SIGNING_KEY_MISSING',
        `the signing-key table ${table} does not exist: keyhole's functions cannot verify a capability`,
        'run `keyhole setup`, or name the table in the signingKeyTable option',
      ),
    )
  } else if (key!.reachable) {
    findings.push(
      finding(
        'KH_DB_SIGNING_KEY_READABLE',
        `the runtime role ${runtime.name} holds privileges on the signing-key table ${table}: it could read the key and mint capabilities`,
        `REVOKE ALL ON ${table} FROM ${ident(runtime.name)}, PUBLIC; (and check its memberships)`,
      ),
    )
  }
  return findings
}
