import type { DatabaseFinding } from '../../errors.ts'
import { finding, guardedOids, ident, type Check, type CheckContext } from './context.ts'
import { functionNameOf } from './names.ts'
import { covers, policyProblems, readAppliedPolicies, type PolicyRow } from './policy-rows.ts'

/**
 * Check 6: the policies of each guarded table (see policy-rows.ts for how they are read). Only
 * permissive policies that apply to the runtime role (TO PUBLIC or a role whose privileges it has)
 * count; restrictive ones only narrow. What is checked:
 * - KH_DB_POLICY_MISSING: an operation keyhole performs on the table has no such policy with an
 *   expression (for UPDATE: a USING; for INSERT: a WITH CHECK, or the USING of an ALL policy).
 * - KH_DB_POLICY_ALWAYS_TRUE: an applied expression (USING, WITH CHECK, or the USING an UPDATE or
 *   ALL policy checks new rows with) has a top-level OR branch that calls none of keyhole's
 *   functions (`true`, `1 = 1`, `x OR true`, a plain column), or the policy depends on none of them
 *   (pg_depend): some rows pass whatever the capability says. Checked for every command, not only
 *   the ones keyhole performs, since an injection can run the others.
 * - KH_DB_POLICY_PUBLIC: a permissive policy TO PUBLIC: it applies to every role.
 * - KH_DB_POLICY_WEAK_CHECK: an UPDATE or ALL policy whose WITH CHECK is not at least as strict as
 *   its USING (by form: the same terms, AND possibly more): a holder could move a row it may
 *   change into a group it may not.
 *
 * In 'guard' mode KH_DB_POLICY_MISSING is not reported: see check 3.
 *
 * These read the expressions' text (policy-expression.ts): a conservative heuristic that works
 * without knowing what the policies should be. Given the application's policies, check 6b
 * (policy-record.ts) also compares every policy with the one keyhole generates, exactly.
 */
export const checkPolicies: Check = async (context) => {
  const { db, options, runtime, tables } = context
  const signatures = options.keyholeFunctions.map((f) => f.signature)
  const policies = await readAppliedPolicies(db, guardedOids(context), signatures)
  const names = signatures.map(functionNameOf)
  const shielded = protectedTables(context, policies, names)
  const findings: DatabaseFinding[] = []
  for (const table of tables) {
    const applied = policies.filter((p) => p.polrelid === table.oid)
    for (const p of applied) {
      const on = `policy ${p.polname} on ${table.name}`
      const drop = `DROP POLICY ${ident(p.polname)} ON ${table.name}; then apply keyhole's generated policies (keyhole policies)`
      const problems = policyProblems(p, names, (oid) => shielded.has(oid))
      if (problems.toPublic) {
        findings.push(
          finding(
            'KH_DB_POLICY_PUBLIC',
            `the permissive ${on} applies TO PUBLIC: every role gets it`,
            `recreate it TO the runtime role: ${drop}`,
          ),
        )
      }
      if (problems.alwaysTrue) {
        findings.push(
          finding(
            'KH_DB_POLICY_ALWAYS_TRUE',
            `the permissive ${on} lets rows pass without reading the capability (an OR branch calls none of keyhole's functions, or only negates or null-tests them)`,
            drop,
          ),
        )
      }
      if (problems.weakCheck) {
        findings.push(
          finding(
            'KH_DB_POLICY_WEAK_CHECK',
            `the ${on} has a WITH CHECK that is not at least as strict as its USING: an UPDATE could move a row out of the holder's groups`,
            drop,
          ),
        )
      }
    }
    // In 'guard' mode no policy can grant anything (no capability is set): none is asked for.
    if (options.mode === 'guard') continue
    for (const operation of table.operations) {
      if (table.oid === undefined || applied.some((p) => covers(p, operation))) continue
      findings.push(
        finding(
          'KH_DB_POLICY_MISSING',
          `${table.name} has no permissive ${operation.toUpperCase()} policy for the runtime role ${runtime.name}, and keyhole performs ${operation.toUpperCase()} on it`,
          `apply keyhole's generated policies for ${table.name} (keyhole policies)`,
        ),
      )
    }
  }
  return findings
}

/**
 * The guarded tables whose row-level security admits, to the runtime role, only rows the
 * capability grants: RLS enabled, and forced when the runtime role owns the table (the runtime
 * role neither superuser nor BYPASSRLS), and every permissive SELECT (or ALL) policy that applies
 * to it reads the capability, directly or by looking up a parent in another such table (found
 * round by round, so a chain comment → post → thread is followed and a cycle never qualifies).
 * A policy's parent lookup in one of these tables is as narrow as the parent's policy.
 */
function protectedTables(
  context: CheckContext,
  policies: readonly PolicyRow[],
  names: readonly string[],
): Set<number> {
  const shielded = new Set<number>()
  if (context.runtime.superuser || context.runtime.bypassRls) return shielded
  const candidates = context.tables.filter(
    (t) => t.oid !== undefined && t.rowSecurity && (t.forceRowSecurity || !t.owned),
  )
  for (let grew = true; grew;) {
    grew = false
    for (const table of candidates) {
      const oid = table.oid as number
      if (shielded.has(oid)) continue
      const reads = policies.filter(
        (p) => p.polrelid === oid && (p.cmd === 'r' || p.cmd === '*') && p.qual !== null,
      )
      if (reads.every((p) => !policyProblems(p, names, (o) => shielded.has(o)).alwaysTrue)) {
        shielded.add(oid)
        grew = true
      }
    }
  }
  return shielded
}
