import type { DatabaseFinding } from '../../errors.ts'
import { finding, guardedOids, ident, rows, type Check } from './context.ts'
import { functionNameOf } from './names.ts'
import { atLeastAsStrict, readsCapability } from './policy-expression.ts'

interface PolicyRow {
  polrelid: number
  polname: string
  cmd: 'r' | 'a' | 'w' | 'd' | '*'
  permissive: boolean
  to_public: boolean
  applies: boolean
  qual: string | null
  with_check: string | null
  calls_keyhole: boolean
}

const commands = { select: 'r', insert: 'a', update: 'w', delete: 'd' } as const

/**
 * The expressions PostgreSQL applies for a permissive policy, by command (PostgreSQL's own rules:
 * an UPDATE or ALL policy without WITH CHECK checks new rows with its USING; a NULL expression
 * grants nothing, so a policy without one does not cover its command).
 */
function expressions(p: PolicyRow): { using: string | null; check: string | null } {
  const check = p.cmd === 'w' || p.cmd === '*' ? (p.with_check ?? p.qual) : p.with_check
  return { using: p.cmd === 'a' ? null : p.qual, check }
}

function covers(p: PolicyRow, operation: keyof typeof commands): boolean {
  if (p.cmd !== '*' && p.cmd !== commands[operation]) return false
  const { using, check } = expressions(p)
  if (operation === 'insert') return check !== null
  return using !== null
}

/**
 * Check 6: the policies of each guarded table, read from `pg_policy` by `polrelid` (never by
 * casting `pg_policies` names, which fails on pg_toast). Only permissive policies that apply to
 * the runtime role (TO PUBLIC or a role whose privileges it has) count; restrictive ones only
 * narrow. What is checked:
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
 * The generated SQL:
 * ```sql
 * SELECT p.polrelid, p.polname, p.polcmd::text AS cmd, p.polpermissive AS permissive,
 *   0 = ANY (p.polroles) AS to_public,
 *   (0 = ANY (p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE r <> 0 AND pg_has_role(r, 'USAGE'))) AS applies,
 *   pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
 *   EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
 *           AND d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (…keyhole's functions…)) AS calls_keyhole
 * FROM pg_policy p WHERE p.polrelid = ANY ($1::oid[])
 * ```
 */
export const checkPolicies: Check = async (context) => {
  const { db, options, runtime, tables } = context
  const policies = await rows<PolicyRow>(
    db,
    `SELECT p.polrelid, p.polname, p.polcmd::text AS cmd, p.polpermissive AS permissive,
       0 = ANY (p.polroles) AS to_public,
       (0 = ANY (p.polroles) OR EXISTS (
         SELECT 1 FROM unnest(p.polroles) AS r WHERE r <> 0 AND pg_has_role(r, 'USAGE'))) AS applies,
       pg_get_expr(p.polqual, p.polrelid) AS qual,
       pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
       EXISTS (
         SELECT 1 FROM pg_depend d
         JOIN unnest($2::text[]) AS s(sig) ON d.refobjid = to_regprocedure(s.sig)
         WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
           AND d.refclassid = 'pg_proc'::regclass) AS calls_keyhole
     FROM pg_policy p
     WHERE p.polrelid = ANY ($1::oid[])
     ORDER BY p.polrelid, p.polname`,
    [guardedOids(context), options.keyholeFunctions.map((f) => f.signature)],
  )
  const names = options.keyholeFunctions.map((f) => functionNameOf(f.signature))
  const findings: DatabaseFinding[] = []
  for (const table of tables) {
    const applied = policies.filter((p) => p.polrelid === table.oid && p.permissive && p.applies)
    for (const p of applied) {
      const on = `policy ${p.polname} on ${table.name}`
      const drop = `DROP POLICY ${ident(p.polname)} ON ${table.name}; then apply keyhole's generated policies (keyhole policies)`
      if (p.to_public) {
        findings.push(
          finding(
            'KH_DB_POLICY_PUBLIC',
            `the permissive ${on} applies TO PUBLIC: every role gets it`,
            `recreate it TO the runtime role: ${drop}`,
          ),
        )
      }
      const { using, check } = expressions(p)
      const applies = [using, check].filter((e): e is string => e !== null)
      if (applies.some((e) => !p.calls_keyhole || !readsCapability(e, names))) {
        findings.push(
          finding(
            'KH_DB_POLICY_ALWAYS_TRUE',
            `the permissive ${on} lets rows pass without reading the capability (an OR branch calls none of keyhole's functions, or only negates or null-tests them)`,
            drop,
          ),
        )
      }
      if (using !== null && check !== null && !atLeastAsStrict(check, using)) {
        findings.push(
          finding(
            'KH_DB_POLICY_WEAK_CHECK',
            `the ${on} has a WITH CHECK that is not at least as strict as its USING: an UPDATE could move a row out of the holder's groups`,
            drop,
          ),
        )
      }
    }
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
