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
 * `keyhole.set_capability` seals the verified capability (sql/000003, sql/000004): SET (with the
 * sealed store installed it could write a seal and a body of its choice for its own transaction,
 * and a grant held now would let it do so once setup installs that store) or ALTER SYSTEM,
 * granted to it, to a role it is a member of (whatever
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

interface StoreRow {
  sealed: number
  functions: number
  owner: string
  owner_may_set: boolean
}

/** The capability functions sql/000004 installs in one variant or the other. */
const storeFunctions = [
  'keyhole.set_capability(text)',
  'keyhole.group_ids(text)',
  'keyhole.is_admin()',
  'keyhole.subject()',
]

/**
 * Check 8d: the capability store installed (sql/000004 decides it at setup, not on every request)
 * still matches the privileges. The sealed variant of `keyhole.set_capability` writes
 * `backtrace_functions`, so when its owner no longer holds SET on it (a grant revoked after setup)
 * every request is refused (42501, never widened): reported with the fix. And the four functions
 * are of one variant: a mixed pair reads as no capability (altered by hand, or half-replaced).
 * PostgreSQL 15+ only: before, setup always installs the signed variant.
 *
 * The generated SQL:
 * ```sql
 * SELECT count(*) FILTER (WHERE position('backtrace_functions' in p.prosrc) > 0)::int AS sealed,
 *   count(*)::int AS functions, pg_get_userbyid(s.proowner)::text AS owner,
 *   has_parameter_privilege(s.proowner, 'backtrace_functions', 'SET') AS owner_may_set
 * FROM pg_proc s, pg_proc p
 * WHERE s.oid = to_regprocedure('keyhole.set_capability(text)') AND p.oid = ANY ($1::regprocedure[])
 * GROUP BY s.proowner
 * ```
 */
export const checkCapabilityStore: Check = async ({ db, runtime }) => {
  /* c8 ignore next: PostgreSQL 14 has no parameter privileges (the tests run on 15+) */
  if (runtime.serverVersion < 150000) return []
  const [store] = await rows<StoreRow>(
    db,
    `SELECT count(*) FILTER (WHERE position('backtrace_functions' in p.prosrc) > 0)::int AS sealed,
       count(*)::int AS functions, pg_get_userbyid(s.proowner)::text AS owner,
       has_parameter_privilege(s.proowner, 'backtrace_functions', 'SET') AS owner_may_set
     FROM pg_proc s, pg_proc p
     WHERE s.oid = to_regprocedure('keyhole.set_capability(text)')
       AND p.oid = ANY (ARRAY(SELECT to_regprocedure(f) FROM unnest($1::text[]) AS f))
     GROUP BY s.proowner`,
    [storeFunctions],
  )
  // No set_capability: KH_DB_KEYHOLE_FUNCTION_ALTERED says so.
  if (store === undefined) return []
  const setup =
    'run `keyhole setup` again: as an administrator who may grant SET on backtrace_functions it grants it to the migration role and installs the sealed store; otherwise it installs the signed store'
  if (store.sealed > 0 && store.sealed < store.functions) {
    return [
      finding(
        'KH_DB_CAPABILITY_STORE_MISMATCH',
        `keyhole's capability functions are of two stores (${store.sealed} of ${store.functions} read the sealed backtrace_functions): every request reads as no capability`,
        setup,
      ),
    ]
  }
  if (store.sealed > 0 && !store.owner_may_set) {
    return [
      finding(
        'KH_DB_CAPABILITY_STORE_MISMATCH',
        `keyhole.set_capability seals the capability in backtrace_functions, but its owner ${store.owner} no longer holds SET on that parameter: every request is refused (permission denied)`,
        `GRANT SET ON PARAMETER backtrace_functions TO ${ident(store.owner)}; (as a superuser), or ${setup}`,
      ),
    ]
  }
  return []
}

/**
 * Where this database's `keyhole.set_capability` keeps the verified capability, read as any role:
 * `'sealed'` when the installed variant (sql/000004, decided at setup) seals it in
 * `backtrace_functions`, `'signed'` otherwise (PostgreSQL 14, or no grant; see sql/000003). Whether
 * the sealed variant still holds its privilege is the check KH_DB_CAPABILITY_STORE_MISMATCH.
 *
 * The generated SQL:
 * ```sql
 * SELECT coalesce(bool_and(position('backtrace_functions' in p.prosrc) > 0), false) AS sealed
 * FROM pg_proc p WHERE p.oid = to_regprocedure('keyhole.set_capability(text)')
 * ```
 * @example
 * ```ts fragment
 * console.log(`capability store: ${await capabilityStore(client)}`)
 * ```
 */
export async function capabilityStore(db: CheckQueryable): Promise<CapabilityStore> {
  // One query on every version: PostgreSQL 14 has only the signed variant, whose source never
  // names backtrace_functions.
  const [store] = await rows<{ sealed: boolean }>(
    db,
    `SELECT coalesce(bool_and(position('backtrace_functions' in p.prosrc) > 0), false) AS sealed
     FROM pg_proc p WHERE p.oid = to_regprocedure('keyhole.set_capability(text)')`,
  )
  return store!.sealed ? 'sealed' : 'signed'
}
