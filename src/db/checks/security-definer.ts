import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'

/**
 * Check 8a: SECURITY DEFINER functions the runtime role can execute, other than keyhole's own.
 * Such a function runs with its owner's rights, so its owner's policies (or none) apply inside it.
 * Only user objects count (`oid >= 16384`, PostgreSQL's FirstNormalObjectId), whatever schema
 * they sit in.
 *
 * The generated SQL:
 * ```sql
 * SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
 * WHERE p.prosecdef AND p.oid >= 16384 AND has_function_privilege(p.oid, 'EXECUTE')
 *   AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) AS s(sig) WHERE to_regprocedure(s.sig) = p.oid)
 * ```
 */
export const checkSecurityDefiner: Check = async ({ db, runtime, options }) => {
  const functions = await rows<{ fn: string }>(
    db,
    `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
     WHERE p.prosecdef AND p.oid >= 16384 AND has_function_privilege(p.oid, 'EXECUTE')
       AND NOT EXISTS (
         SELECT 1 FROM unnest($1::text[]) AS s(sig) WHERE to_regprocedure(s.sig) = p.oid)
     ORDER BY 1`,
    [options.keyholeFunctions.map((f) => f.signature)],
  )
  const findings: DatabaseFinding[] = []
  for (const { fn } of functions) {
    findings.push(
      finding(
        'KH_DB_SECURITY_DEFINER',
        `the runtime role ${runtime.name} can execute the SECURITY DEFINER function ${fn}, which runs with its owner's rights and may bypass row-level security`,
        `REVOKE EXECUTE ON FUNCTION ${fn} FROM ${ident(runtime.name)}, PUBLIC; (or make it SECURITY INVOKER)`,
      ),
    )
  }
  return findings
}
