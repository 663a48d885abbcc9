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
 * GRANT SET ON PARAMETER backtrace_functions TO "app_migrator"; -- when it does not hold it yet
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
  const { rows } = await client.query<{ may_grant: boolean; held: string[]; granted: boolean }>(
    `SELECT has_parameter_privilege('backtrace_functions', 'SET WITH GRANT OPTION') AS may_grant,
       EXISTS (SELECT FROM pg_parameter_acl p CROSS JOIN LATERAL aclexplode(p.paracl) AS a
         WHERE p.parname = 'backtrace_functions' AND a.privilege_type = 'SET'
           AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2)) AS granted,
       ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE 'the runtime role' END
         FROM pg_parameter_acl p CROSS JOIN LATERAL aclexplode(p.paracl) AS a
         WHERE p.parname = 'backtrace_functions' AND a.privilege_type IN ('SET', 'ALTER SYSTEM')
           AND (a.grantee = 0 OR a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1))
         ORDER BY 1) AS held`,
    [runtime, migration],
  )
  const { may_grant: mayGrant, held, granted: holds } = rows[0]!
  const repairs: SetupRepair[] = []
  if (mayGrant) {
    if (!holds) {
      await onParameter(client, `GRANT SET ON PARAMETER backtrace_functions TO ${q(migration)}`)
    }
    if (held.length > 0) {
      await onParameter(
        client,
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

/** What PostgreSQL says when another session changed the parameter's privileges first. */
const raced = new Set([
  // `tuple concurrently updated`: both changed the parameter's one pg_parameter_acl row
  'XX000',
  // both created that row (the parameter's first grant in the cluster)
  '23505',
])

/**
 * A GRANT or REVOKE on the parameter, in setup's transaction, under a savepoint, run again when a
 * concurrent one won the race: a parameter's privileges are one catalog row for the whole cluster,
 * so the setups of two databases at once (or any other GRANT on it) update the same row, and
 * PostgreSQL fails the later with `tuple concurrently updated` once the first commits. Retried
 * at most 5 times.
 */
export async function onParameter(client: PgClient, sql: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await client.query('SAVEPOINT keyhole_parameter')
    try {
      await client.query(sql)
      await client.query('RELEASE SAVEPOINT keyhole_parameter')
      return
    } catch (error) {
      await client.query('ROLLBACK TO SAVEPOINT keyhole_parameter')
      /* c8 ignore start: the race needs both sessions to read the row before either updates it
         (the test's open GRANT makes setup wait for its lock instead); any other error, or a
         fifth race, is rethrown */
      if (attempt === 5 || !raced.has((error as { code?: string }).code ?? '')) throw error
    }
  }
}
/* c8 ignore stop */
