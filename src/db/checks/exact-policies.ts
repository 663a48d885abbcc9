import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'
import { expectedPolicies, parseRecord, POLICY_DEFINITION_SQL } from './policy-record.ts'
import { readAppliedPolicies } from './policy-rows.ts'

interface InstalledRow {
  table_oid: number | null
  installed: boolean
  definition: string
  record: string | null
}

/**
 * Check 6b, when the options carry the application's policies (`policies`): every policy keyhole
 * generates for them (rendered now, for the runtime role and `groupIdType`) must be installed
 * exactly, as the record on the policy proves (see policy-record.ts), and no other permissive
 * policy may apply to the runtime role on their tables. Check 6's text heuristic still runs for
 * every policy; this one needs no heuristic.
 * - KH_DB_POLICY_NOT_APPLIED: a policy the application's policies generate is not installed, was
 *   created without keyhole's record (by hand, or by SQL other than the recorded policy SQL), or
 *   was applied from another statement than the one they generate now (the guards, the runtime
 *   role, the command or the group-ID type changed since the migration).
 * - KH_DB_POLICY_ALTERED: it was changed after keyhole applied it: its command, roles, kind or
 *   parsed expressions no longer match the record (`ALTER POLICY`; or a restore or upgrade since).
 * - KH_DB_POLICY_UNEXPECTED: a permissive policy that applies to the runtime role on one of these
 *   tables and that the application's policies do not generate (an extra policy, or one for an
 *   operation they leave out): permissive policies add up, so it widens what the table allows.
 *   Restrictive policies and policies for other roles are not reported: they cannot widen it.
 *
 * The generated SQL:
 * ```sql
 * SELECT c.oid AS table_oid, p.oid IS NOT NULL AS installed, <the definition digest> AS definition,
 *   pg_catalog.obj_description(p.oid, 'pg_policy') AS record
 * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS e(tab, name, n)
 * LEFT JOIN pg_class c ON c.oid = to_regclass(e.tab)
 * LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = e.name
 * ORDER BY e.n
 * ```
 * then the permissive policies of those tables as check 6 reads them.
 */
export const checkExactPolicies: Check = async (context) => {
  const { db, options, runtime } = context
  if (options.policies === undefined) return []
  const expected = expectedPolicies(options.policies, {
    role: runtime.name,
    groupIdType: options.groupIdType,
  })
  const installed = await rows<InstalledRow>(
    db,
    `SELECT c.oid AS table_oid, p.oid IS NOT NULL AS installed, ${POLICY_DEFINITION_SQL} AS definition,
       pg_catalog.obj_description(p.oid, 'pg_policy') AS record
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS e(tab, name, n)
     LEFT JOIN pg_class c ON c.oid = to_regclass(e.tab)
     LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = e.name
     ORDER BY e.n`,
    [expected.map((p) => p.table), expected.map((p) => p.name)],
  )
  const findings: DatabaseFinding[] = []
  const reapply = `apply keyhole's generated policies again (keyhole migrate, or applyPolicies)`
  expected.forEach((p, i) => {
    const row = installed[i]!
    const on = `the policy ${p.name} on ${p.table}`
    const record = parseRecord(row.record)
    if (!row.installed) {
      findings.push(
        finding(
          'KH_DB_POLICY_NOT_APPLIED',
          `${on}, which the application's policies define for the runtime role ${runtime.name}, is not installed`,
          reapply,
        ),
      )
    } else if (record === undefined) {
      findings.push(
        finding(
          'KH_DB_POLICY_NOT_APPLIED',
          `${on} was not created by keyhole's recorded policy SQL (it has no keyhole record), so it cannot be shown to be the one the application's policies define`,
          reapply,
        ),
      )
    } else if (record.statement !== p.statementSha256) {
      findings.push(
        finding(
          'KH_DB_POLICY_NOT_APPLIED',
          `${on} was applied from another statement than the application's policies generate now (its guard, role, command or group-ID type changed since)`,
          reapply,
        ),
      )
    } else if (record.definition !== row.definition) {
      findings.push(
        finding(
          'KH_DB_POLICY_ALTERED',
          `${on} was changed after keyhole applied it: its expressions, roles, command or kind differ from the recorded ones (or the database was restored or upgraded since)`,
          `find out who changed it, then ${reapply}`,
        ),
      )
    }
  })
  const tableOids = [
    ...new Set(installed.flatMap((r) => (r.table_oid === null ? [] : [r.table_oid]))),
  ]
  const known = new Set(expected.map((p, i) => `${installed[i]!.table_oid}/${p.name}`))
  const applied = await readAppliedPolicies(
    db,
    tableOids,
    options.keyholeFunctions.map((f) => f.signature),
  )
  for (const p of applied) {
    if (known.has(`${p.polrelid}/${p.polname}`)) continue
    const table = expected[installed.findIndex((r) => r.table_oid === p.polrelid)]!.table
    findings.push(
      finding(
        'KH_DB_POLICY_UNEXPECTED',
        `the permissive policy ${p.polname} on ${table} applies to the runtime role ${runtime.name} but is not one the application's policies define: it widens what they allow`,
        `DROP POLICY ${ident(p.polname)} ON ${table}; or define it in the application's policies`,
      ),
    )
  }
  return findings
}
