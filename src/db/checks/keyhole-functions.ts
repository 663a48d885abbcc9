import type { DatabaseFinding } from '../../errors.ts'
import { finding, rows, type Check } from './context.ts'

interface FunctionRow {
  sig: string
  found: boolean
  secdef: boolean
  config: string[] | null
  owner: string
  owner_is_runtime: boolean
  owner_superuser: boolean
  source_sha256: string
  executable: boolean
}

/** The search_path keyhole's functions are installed with, compared without spaces or quotes. */
const expectedSearchPath = 'search_path=pg_catalog,pg_temp'

/**
 * Check 8b: keyhole's own functions are as `keyhole setup` installs them: present, SECURITY
 * DEFINER, with exactly `SET search_path = pg_catalog, pg_temp` (no other setting), owned by the
 * migration role (when known), never by the runtime role or a superuser, and with the expected
 * body when the expectation carries its SHA-256; in 'rls' mode, executable by the runtime role
 * (the requests call each of them: without EXECUTE every request would fail). (Membership of the
 * runtime role in their owner is check 2.)
 *
 * The generated SQL:
 * ```sql
 * SELECT s.sig, p.oid IS NOT NULL AS found, p.prosecdef AS secdef, p.proconfig AS config,
 *   pg_get_userbyid(p.proowner) AS owner, p.proowner = $2 AS owner_is_runtime, r.rolsuper AS owner_superuser,
 *   encode(sha256(convert_to(p.prosrc, 'UTF8')), 'hex') AS source_sha256,
 *   has_function_privilege($2, p.oid, 'EXECUTE') AS executable
 * FROM unnest($1::text[]) WITH ORDINALITY AS s(sig, n)
 * LEFT JOIN pg_proc p ON p.oid = to_regprocedure(s.sig) LEFT JOIN pg_roles r ON r.oid = p.proowner
 * ```
 */
export const checkKeyholeFunctions: Check = async ({ db, runtime, options }) => {
  const functions = await rows<FunctionRow>(
    db,
    `SELECT s.sig, p.oid IS NOT NULL AS found, p.prosecdef AS secdef, p.proconfig::text[] AS config,
       pg_get_userbyid(p.proowner)::text AS owner, p.proowner = $2::oid AS owner_is_runtime,
       r.rolsuper AS owner_superuser,
       encode(sha256(convert_to(p.prosrc, 'UTF8')), 'hex') AS source_sha256,
       p.oid IS NOT NULL AND has_function_privilege($2::oid, p.oid, 'EXECUTE') AS executable
     FROM unnest($1::text[]) WITH ORDINALITY AS s(sig, n)
     LEFT JOIN pg_proc p ON p.oid = to_regprocedure(s.sig)
     LEFT JOIN pg_roles r ON r.oid = p.proowner
     ORDER BY s.n`,
    [options.keyholeFunctions.map((f) => f.signature), runtime.oid],
  )
  const findings: DatabaseFinding[] = []
  for (const [i, f] of functions.entries()) {
    const problems: string[] = []
    const expected = options.keyholeFunctions[i]!
    if (!f.found) {
      problems.push('it does not exist')
    } else {
      if (!f.secdef) problems.push('it is not SECURITY DEFINER')
      const config = (f.config ?? []).map((c) => c.replace(/[\s"]/g, '').toLowerCase())
      if (config.length !== 1 || config[0] !== expectedSearchPath) {
        problems.push(
          `its settings are ${JSON.stringify(f.config ?? [])}, not search_path=pg_catalog, pg_temp only`,
        )
      }
      if (f.owner_is_runtime) problems.push(`the runtime role ${runtime.name} owns it`)
      else if (f.owner_superuser) problems.push(`the superuser ${f.owner} owns it`)
      else if (options.migrationRole !== undefined && f.owner !== options.migrationRole) {
        problems.push(`${f.owner} owns it, not the migration role ${options.migrationRole}`)
      }
      if (expected.sourceSha256 !== undefined && expected.sourceSha256 !== f.source_sha256) {
        problems.push('its body differs from the one keyhole installs')
      }
      if (options.mode === 'rls' && !f.executable) {
        problems.push(`the runtime role ${runtime.name} may not execute it`)
      }
    }
    if (problems.length === 0) continue
    findings.push(
      finding(
        'KH_DB_KEYHOLE_FUNCTION_ALTERED',
        `keyhole's function ${f.sig} was altered: ${problems.join('; ')}`,
        "run `keyhole setup` as the migration role to reinstall keyhole's functions",
      ),
    )
  }
  return findings
}
