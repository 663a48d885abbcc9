/**
 * The permissive policies of some tables as the runtime role is subject to them, read once from
 * `pg_policy`, and what they allow: shared by check 6 (guarded tables) and check 11 (tables
 * keyhole was not told about, which must meet the same bar).
 */
import type { GuardedOperation } from '../../errors.ts'
import { rows, type CheckQueryable } from './context.ts'
import { atLeastAsStrict, readsCapability } from './policy-expression.ts'

export interface PolicyRow {
  polrelid: number
  polname: string
  cmd: 'r' | 'a' | 'w' | 'd' | '*'
  permissive: boolean
  to_public: boolean
  /** TO PUBLIC, or to a role whose privileges the runtime role has. */
  applies: boolean
  qual: string | null
  with_check: string | null
  /** The policy depends (pg_depend) on one of keyhole's functions. */
  calls_keyhole: boolean
  /** The other tables the policy reads (pg_depend), by OID. */
  relations: number[]
}

const commands = { select: 'r', insert: 'a', update: 'w', delete: 'd' } as const

/**
 * The expressions PostgreSQL applies for a permissive policy, by command (PostgreSQL's own rules:
 * an UPDATE or ALL policy without WITH CHECK checks new rows with its USING; a NULL expression
 * grants nothing, so a policy without one does not cover its command).
 */
export function expressions(p: PolicyRow): { using: string | null; check: string | null } {
  const check = p.cmd === 'w' || p.cmd === '*' ? (p.with_check ?? p.qual) : p.with_check
  return { using: p.cmd === 'a' ? null : p.qual, check }
}

/** The policy grants `operation` (for UPDATE: a USING; for INSERT: a WITH CHECK). */
export function covers(p: PolicyRow, operation: GuardedOperation): boolean {
  if (p.cmd !== '*' && p.cmd !== commands[operation]) return false
  const { using, check } = expressions(p)
  if (operation === 'insert') return check !== null
  return using !== null
}

/** What is wrong with a permissive policy that applies to the runtime role (see check 6). */
export interface PolicyProblems {
  /** TO PUBLIC: every role gets it. */
  readonly toPublic: boolean
  /** Some rows pass whatever the capability says. */
  readonly alwaysTrue: boolean
  /** The WITH CHECK is not at least as strict as the USING. */
  readonly weakCheck: boolean
}

/**
 * Judges one policy; `functionNames` are keyhole's functions' names, without their schema.
 * `protectedTable` says whether a table's own row-level security admits only rows the capability
 * grants (see check 6): when every other table the policy reads is such a table, an OR branch that
 * only looks up the row's parent in one of them (`EXISTS (SELECT 1 FROM parent p1 WHERE p1.id =
 * t.parent_id)`, as keyhole generates when the parent's SELECT policy already says what the guard
 * says) reads the capability through the parent's policy.
 */
export function policyProblems(
  p: PolicyRow,
  functionNames: readonly string[],
  protectedTable?: (oid: number) => boolean,
): PolicyProblems {
  const { using, check } = expressions(p)
  const applied = [using, check].filter((e): e is string => e !== null)
  const viaParent =
    protectedTable !== undefined && p.relations.length > 0 && p.relations.every(protectedTable)
  return {
    toPublic: p.to_public,
    alwaysTrue: applied.some(
      (e) => !readsCapability(e, p.calls_keyhole ? functionNames : [], viaParent),
    ),
    weakCheck: using !== null && check !== null && !atLeastAsStrict(check, using),
  }
}

/**
 * The permissive policies of the tables `oids` that apply to the runtime role (restrictive ones
 * only narrow what the permissive ones grant), read by `polrelid` (never by casting `pg_policies`
 * names, which fails on pg_toast).
 *
 * The generated SQL:
 * ```sql
 * SELECT p.polrelid, p.polname, p.polcmd::text AS cmd, p.polpermissive AS permissive,
 *   0 = ANY (p.polroles) AS to_public,
 *   (0 = ANY (p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE r <> 0 AND pg_has_role(r, 'USAGE'))) AS applies,
 *   pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
 *   EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
 *           AND d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (…keyhole's functions…)) AS calls_keyhole,
 *   ARRAY(SELECT DISTINCT d.refobjid::int FROM pg_depend d WHERE d.classid = 'pg_policy'::regclass
 *         AND d.objid = p.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> p.polrelid) AS relations
 * FROM pg_policy p WHERE p.polrelid = ANY ($1::oid[])
 * ```
 */
export async function readAppliedPolicies(
  db: CheckQueryable,
  oids: readonly number[],
  functionSignatures: readonly string[],
): Promise<PolicyRow[]> {
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
           AND d.refclassid = 'pg_proc'::regclass) AS calls_keyhole,
       ARRAY(
         SELECT DISTINCT d.refobjid::int FROM pg_depend d
         WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
           AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> p.polrelid) AS relations
     FROM pg_policy p
     WHERE p.polrelid = ANY ($1::oid[])
     ORDER BY p.polrelid, p.polname`,
    [oids, functionSignatures],
  )
  return policies.filter((p) => p.permissive && p.applies)
}
