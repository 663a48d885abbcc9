/**
 * The sealed capability's one privilege (see sql/000003): SET on the parameter
 * `backtrace_functions` for the migration role, which owns `keyhole.set_capability`, and never for
 * the runtime role.
 */
import type { PgClient } from './pg-driver.ts'
import type { SetupRepair } from './setup-repairs.ts'

/**
 * Where `keyhole.set_capability` keeps the verified capability (see sql/000003):
 * - `'sealed'`: the transaction-local `backtrace_functions`, which only the migration role (its
 *   owner) may set: the policies read it without the key or an HMAC;
 * - `'signed'`: the HMAC-bound `keyhole.capability` of sql/000001, which the policies verify on
 *   every check: PostgreSQL 14, or a server where setup could not grant the privilege.
 */
export type CapabilityStore = 'sealed' | 'signed'

/**
 * Grants SET on `backtrace_functions` to the migration role when the server is PostgreSQL 15+ and
 * the connecting role may grant it (a superuser, or a role holding it WITH GRANT OPTION), and then
 * revokes SET and ALTER SYSTEM on it from the runtime role and PUBLIC (a repair
 * KH_DB_CAPABILITY_PARAMETER_WRITABLE when either held one). Returns the store the migration role
 * ends up with: `'signed'` when it cannot be granted (setup carries on; the functions use the
 * signed setting).
 *
 * ```sql
 * SELECT has_parameter_privilege('backtrace_functions', 'SET WITH GRANT OPTION') AS may_grant, …;
 * GRANT SET ON PARAMETER backtrace_functions TO "app_migrator";
 * REVOKE SET, ALTER SYSTEM ON PARAMETER backtrace_functions FROM PUBLIC, "app_runtime";
 * ```
 */
export async function sealCapabilityParameter(
  client: PgClient,
  migration: string,
  runtime: string,
  q: (name: string) => string,
): Promise<{ store: CapabilityStore; repairs: SetupRepair[] }> {
  const { rows: version } = await client.query<{ version: number }>(
    `SELECT current_setting('server_version_num')::int AS version`,
  )
  /* c8 ignore next: PostgreSQL 14 has no parameter privileges (the tests run on 15+) */
  if (version[0]!.version < 150000) return { store: 'signed', repairs: [] }
  const { rows } = await client.query<{ may_grant: boolean; held: string[] }>(
    `SELECT has_parameter_privilege('backtrace_functions', 'SET WITH GRANT OPTION') AS may_grant,
       ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE 'the runtime role' END
         FROM pg_parameter_acl p CROSS JOIN LATERAL aclexplode(p.paracl) AS a
         WHERE p.parname = 'backtrace_functions' AND a.privilege_type IN ('SET', 'ALTER SYSTEM')
           AND (a.grantee = 0 OR a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1))
         ORDER BY 1) AS held`,
    [runtime],
  )
  const { may_grant: mayGrant, held } = rows[0]!
  const repairs: SetupRepair[] = []
  if (mayGrant) {
    await client.query(`GRANT SET ON PARAMETER backtrace_functions TO ${q(migration)}`)
    if (held.length > 0) {
      await client.query(
        `REVOKE SET, ALTER SYSTEM ON PARAMETER backtrace_functions FROM PUBLIC, ${q(runtime)}`,
      )
      repairs.push({
        code: 'KH_DB_CAPABILITY_PARAMETER_WRITABLE',
        message: `revoked SET and ALTER SYSTEM on the parameter backtrace_functions from ${held.join(' and ')}`,
      })
    }
  }
  const { rows: granted } = await client.query<{ sealed: boolean }>(
    `SELECT has_parameter_privilege($1, 'backtrace_functions', 'SET') AS sealed`,
    [migration],
  )
  return { store: granted[0]!.sealed ? 'sealed' : 'signed', repairs }
}
