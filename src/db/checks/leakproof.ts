import type { DatabaseFinding } from '../../errors.ts'
import { finding, rows, type Check } from './context.ts'

/**
 * Check 9: user-defined LEAKPROOF functions (`oid >= 16384`). The planner may run a LEAKPROOF
 * function on rows before the policies filter them, so a function that is not truly leak-proof
 * (an error or notice that prints its argument) reveals hidden rows. Only a superuser can mark a
 * function LEAKPROOF: one found here was put there on purpose and deserves a look.
 *
 * The generated SQL:
 * ```sql
 * SELECT p.oid::regprocedure::text AS fn FROM pg_proc p WHERE p.proleakproof AND p.oid >= 16384
 * ```
 */
export const checkLeakproof: Check = async ({ db }) => {
  const functions = await rows<{ fn: string }>(
    db,
    `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
     WHERE p.proleakproof AND p.oid >= 16384 ORDER BY 1`,
  )
  const findings: DatabaseFinding[] = []
  for (const { fn } of functions) {
    findings.push(
      finding(
        'KH_DB_LEAKPROOF',
        `the user-defined function ${fn} is marked LEAKPROOF: the planner may call it on rows the policies hide`,
        `ALTER FUNCTION ${fn} NOT LEAKPROOF; (as a superuser)`,
      ),
    )
  }
  return findings
}
