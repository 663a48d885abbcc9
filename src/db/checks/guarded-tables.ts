import type { DatabaseFinding } from '../../errors.ts'
import { finding, type Check } from './context.ts'

/**
 * Check 3: each guarded table exists, is not owned by the runtime role, and has row-level security
 * enabled and forced (`pg_class.relrowsecurity`, `relforcerowsecurity`, `relowner`, read in the
 * context's second query). FORCE matters even though the runtime role is not the owner: it keeps
 * the policies on for the owner and its members too.
 *
 * In 'guard' mode (the `mode` option) no capability is ever set, so the tables must NOT have
 * row-level security that applies to the runtime role: its policies, which read the capability,
 * would refuse every row (KH_DB_GUARD_MODE_UNDER_RLS), and nothing is asked of RLS otherwise.
 */
export const checkGuardedTables: Check = ({ runtime, tables, options }) => {
  const findings: DatabaseFinding[] = []
  for (const t of tables) {
    if (t.oid === undefined) {
      findings.push(
        finding(
          'KH_DB_GUARDED_TABLE_MISSING',
          `the guarded table ${t.name} does not exist (or is not a table) in this database`,
          'run the migrations, or correct the table name in the guarded tables',
        ),
      )
      continue
    }
    if (t.owned) {
      findings.push(
        finding(
          'KH_DB_OWNS_GUARDED_TABLE',
          `the runtime role ${runtime.name} owns the guarded table ${t.name}: it can disable row-level security and alter its policies`,
          `ALTER TABLE ${t.name} OWNER TO <migration role>; then grant the runtime role SELECT, INSERT, UPDATE, DELETE again`,
        ),
      )
    }
    if (options.mode === 'guard') {
      if (t.rowSecurity && (t.forceRowSecurity || !t.owned)) {
        findings.push(
          finding(
            'KH_DB_GUARD_MODE_UNDER_RLS',
            `row-level security applies to the runtime role ${runtime.name} on the guarded table ${t.name}, but keyhole runs in 'guard' mode, which never sets the capability its policies read: every request on ${t.name} would be refused`,
            `set database.mode: 'rls' with database.signingKey (the key \`keyhole setup\` installed); or, for the statement guard alone, run \`keyhole migrate\` without --policies and disable row-level security on the table in a migration (ALTER TABLE ${t.name} DISABLE ROW LEVEL SECURITY), since \`keyhole migrate --policies\` enables it again`,
          ),
        )
      }
      continue
    }
    if (!t.rowSecurity) {
      findings.push(
        finding(
          'KH_DB_RLS_DISABLED',
          `row-level security is disabled on the guarded table ${t.name}: its policies do not apply`,
          `ALTER TABLE ${t.name} ENABLE ROW LEVEL SECURITY;`,
        ),
      )
    }
    if (!t.forceRowSecurity) {
      findings.push(
        finding(
          'KH_DB_RLS_NOT_FORCED',
          `row-level security is not forced on the guarded table ${t.name}: its owner ${t.owner} and that role's members bypass the policies`,
          `ALTER TABLE ${t.name} FORCE ROW LEVEL SECURITY;`,
        ),
      )
    }
  }
  return findings
}
