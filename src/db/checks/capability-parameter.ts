import type { DatabaseFinding } from '../../errors.ts'
import type { CapabilityStore } from '../setup-sealed.ts'
import { finding, ident, rows, type Check, type CheckQueryable } from './context.ts'

interface GrantRow {
  grantee: string
  public: boolean
  direct: boolean
}

/**
 * Check 8c: the runtime role may write the parameter `backtrace_functions`, where
 * `keyhole.set_capability` seals the verified capability (sql/000003): SET (it could write a
 * capability of its choice for its own transaction, in either store, since the policies read a
 * sealed value first) or ALTER SYSTEM, granted to it, to a role it is a member of (whatever
 * INHERIT says: it may SET ROLE), or to PUBLIC. PostgreSQL 15+ only: before, only a superuser may
 * set it (check 1).
 *
 * The generated SQL:
 * ```sql
 * SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
 *   a.grantee = 0 AS public, a.grantee = $1::oid AS direct
 * FROM pg_parameter_acl p CROSS JOIN LATERAL aclexplode(p.paracl) AS a
 * WHERE p.parname = 'backtrace_functions' AND a.privilege_type IN ('SET', 'ALTER SYSTEM')
 *   AND (a.grantee = 0 OR pg_has_role($1::oid, a.grantee, 'MEMBER'))
 * ```
 */
export const checkCapabilityParameter: Check = async ({ db, runtime }) => {
  /* c8 ignore next: PostgreSQL 14 has no parameter privileges (the tests run on 15+) */
  if (runtime.serverVersion < 150000) return []
  const grants = await rows<GrantRow>(
    db,
    `SELECT DISTINCT
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
       a.grantee = 0 AS public, a.grantee = $1::oid AS direct
     FROM pg_parameter_acl p CROSS JOIN LATERAL aclexplode(p.paracl) AS a
     WHERE p.parname = 'backtrace_functions' AND a.privilege_type IN ('SET', 'ALTER SYSTEM')
       AND (a.grantee = 0 OR pg_has_role($1::oid, a.grantee, 'MEMBER'))
     ORDER BY 1`,
    [runtime.oid],
  )
  const findings: DatabaseFinding[] = []
  const revoke = 'REVOKE SET, ALTER SYSTEM ON PARAMETER backtrace_functions FROM'
  for (const g of grants) {
    /* c8 ignore start: PUBLIC is not tested (parameter privileges are cluster-wide: the checks of
       the test files running meanwhile would see the grant) */
    const [through, fix] = g.public
      ? ['through PUBLIC', `${revoke} PUBLIC; (as a superuser; keyhole setup does)`]
      : g.direct
        ? ['directly', `${revoke} ${ident(runtime.name)}; (as a superuser; keyhole setup does)`]
        : [`as a member of ${g.grantee}`, `REVOKE ${ident(g.grantee)} FROM ${ident(runtime.name)};`]
    /* c8 ignore stop */
    findings.push(
      finding(
        'KH_DB_CAPABILITY_PARAMETER_WRITABLE',
        `the runtime role ${runtime.name} may SET or ALTER SYSTEM the parameter backtrace_functions (${through}), where keyhole seals the verified capability: SQL run as it could write a capability of its choice`,
        fix,
      ),
    )
  }
  return findings
}

/**
 * Where this database's `keyhole.set_capability` keeps the verified capability, read as any role:
 * `'sealed'` when the server is PostgreSQL 15+, the installed function is sql/000003's and its
 * owner holds SET on `backtrace_functions`; `'signed'` otherwise (see sql/000003).
 *
 * The generated SQL (on PostgreSQL 15+):
 * ```sql
 * SELECT coalesce(bool_and(position('backtrace_functions' in p.prosrc) > 0
 *   AND has_parameter_privilege(p.proowner, 'backtrace_functions', 'SET')), false) AS sealed
 * FROM pg_proc p WHERE p.oid = to_regprocedure('keyhole.set_capability(text)')
 * ```
 * @example
 * ```ts fragment
 * console.log(`capability store: ${await capabilityStore(client)}`)
 * ```
 */
export async function capabilityStore(db: CheckQueryable): Promise<CapabilityStore> {
  const [server] = await rows<{ version: number }>(
    db,
    `SELECT current_setting('server_version_num')::int AS version`,
  )
  /* c8 ignore next: PostgreSQL 14 has no parameter privileges (the tests run on 15+) */
  if (server!.version < 150000) return 'signed'
  const [store] = await rows<{ sealed: boolean }>(
    db,
    `SELECT coalesce(bool_and(position('backtrace_functions' in p.prosrc) > 0
       AND has_parameter_privilege(p.proowner, 'backtrace_functions', 'SET')), false) AS sealed
     FROM pg_proc p WHERE p.oid = to_regprocedure('keyhole.set_capability(text)')`,
  )
  return store!.sealed ? 'sealed' : 'signed'
}
