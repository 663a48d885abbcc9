/**
 * The start-up checks: keyhole refuses to serve from a database where the runtime role could
 * step around row-level security. Each check is one small function over the catalogs (see
 * `checks/`), run on the RUNTIME connection as `current_user`.
 */
import { InsecureDatabase, type DatabaseFinding } from '../errors.ts'
import { checkCreatePrivileges } from './checks/create-privileges.ts'
import { checkExactPolicies } from './checks/exact-policies.ts'
import {
  rows,
  type Check,
  type CheckContext,
  type CheckQueryable,
  type GuardedTableFacts,
  type RuntimeFacts,
} from './checks/context.ts'
import { checkGuardedTables } from './checks/guarded-tables.ts'
import { checkKeyholeFunctions } from './checks/keyhole-functions.ts'
import { checkLeakproof } from './checks/leakproof.ts'
import { checkMemberships } from './checks/memberships.ts'
import {
  resolveCheckOptions,
  type CheckDatabaseOptions,
  type ResolvedCheckOptions,
} from './checks/options.ts'
import { checkPolicies } from './checks/policies.ts'
import { checkRoleAttributes } from './checks/role-attributes.ts'
import { checkSecurityDefiner } from './checks/security-definer.ts'
import { checkSettings } from './checks/settings.ts'
import { checkSigningKey } from './checks/signing-key.ts'
import { checkTablePrivileges } from './checks/table-privileges.ts'
import { checkUnguardedTables } from './checks/unguarded-tables.ts'
import { checkViews } from './checks/views.ts'

/** The checks in report order (SECURITY-CASES.md's numbering). */
const checks: readonly Check[] = [
  checkRoleAttributes,
  checkMemberships,
  checkGuardedTables,
  checkTablePrivileges,
  checkCreatePrivileges,
  checkPolicies,
  checkExactPolicies,
  checkViews,
  checkSecurityDefiner,
  checkKeyholeFunctions,
  checkLeakproof,
  checkSettings,
  checkUnguardedTables,
  checkSigningKey,
]

interface RuntimeRow {
  oid: number
  name: string
  superuser: boolean
  bypass_rls: boolean
  create_role: boolean
  create_db: boolean
  replication: boolean
  server_version: number
  row_security: string
  search_path: string[]
}

async function readRuntime(db: CheckQueryable): Promise<RuntimeFacts> {
  const [r] = await rows<RuntimeRow>(
    db,
    `SELECT r.oid, r.rolname::text AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       r.rolcreaterole AS create_role, r.rolcreatedb AS create_db, r.rolreplication AS replication,
       current_setting('server_version_num')::int AS server_version,
       current_setting('row_security') AS row_security,
       current_schemas(false)::text[] AS search_path
     FROM pg_roles r WHERE r.rolname = current_user`,
  )
  return {
    oid: r!.oid,
    name: r!.name,
    superuser: r!.superuser,
    bypassRls: r!.bypass_rls,
    createRole: r!.create_role,
    createDb: r!.create_db,
    replication: r!.replication,
    serverVersion: r!.server_version,
    rowSecurity: r!.row_security,
    searchPath: r!.search_path,
  }
}

interface TableRow {
  oid: number | null
  rls: boolean
  forced: boolean
  owner: string | null
  owned: boolean
}

async function readGuardedTables(
  db: CheckQueryable,
  options: ResolvedCheckOptions,
  runtime: RuntimeFacts,
): Promise<GuardedTableFacts[]> {
  const found = await rows<TableRow>(
    db,
    `SELECT c.oid, coalesce(c.relrowsecurity, false) AS rls,
       coalesce(c.relforcerowsecurity, false) AS forced,
       pg_get_userbyid(c.relowner)::text AS owner, coalesce(c.relowner = $2::oid, false) AS owned
     FROM unnest($1::text[]) WITH ORDINALITY AS g(name, n)
     LEFT JOIN pg_class c ON c.oid = to_regclass(g.name) AND c.relkind IN ('r', 'p')
     ORDER BY g.n`,
    [options.guardedTables.map((g) => g.table), runtime.oid],
  )
  return options.guardedTables.map((g, i) => {
    const row = found[i]!
    return {
      name: g.table,
      operations: g.operations,
      oid: row.oid ?? undefined,
      rowSecurity: row.rls,
      forceRowSecurity: row.forced,
      owner: row.owner ?? undefined,
      owned: row.owned,
    }
  })
}

/**
 * Checks that the database enforces what keyhole relies on, as seen by the role `queryable` is
 * connected as (the RUNTIME role the application serves with). Returns every finding, each with a
 * stable code and how to fix it; an empty array means the database passed. The queries only read
 * the catalogs; they run once at start-up and on each monitor tick, never per request.
 *
 * A superuser holds every privilege and bypasses row-level security, so for one the report is the
 * role's attributes alone: nothing else can be judged until that is fixed.
 *
 * Pass a pg `Client` (or a `PoolClient`) to see one session's settings; with a `Pool` each query
 * may use another connection.
 *
 * @example
 * ```ts
 * const findings = await checkDatabase(pool, {
 *   guardedTables: [{ table: 'public.posts', operations: ['select', 'insert', 'update', 'delete'] }],
 *   migrationRole: 'app_migrator',
 *   // optional: compare every policy with the one keyhole generates from these, exactly
 *   policies,
 * })
 * ```
 */
export async function checkDatabase(
  queryable: CheckQueryable,
  options: CheckDatabaseOptions,
): Promise<DatabaseFinding[]> {
  const resolved = resolveCheckOptions(options)
  const runtime = await readRuntime(queryable)
  const context: CheckContext = {
    db: queryable,
    options: resolved,
    runtime,
    tables: await readGuardedTables(queryable, resolved, runtime),
  }
  if (runtime.superuser) return checkRoleAttributes(context) as DatabaseFinding[]
  const findings: DatabaseFinding[] = []
  // One after another: a pool keeps its other connections for requests.
  for (const check of checks) findings.push(...(await check(context)))
  return findings
}

/**
 * Runs {@link checkDatabase} and throws {@link InsecureDatabase} (`KH_INSECURE_DATABASE`) when
 * there is any finding: its message is a readable report listing every finding with its code and
 * fix, and `findings` holds them.
 */
export async function assertDatabaseSecure(
  queryable: CheckQueryable,
  options: CheckDatabaseOptions,
): Promise<void> {
  const findings = await checkDatabase(queryable, options)
  if (findings.length > 0) throw new InsecureDatabase(findings)
}

export type { CheckQueryable } from './checks/context.ts'
export type {
  CheckDatabaseOptions,
  GuardedTable,
  KeyholeFunctionExpectation,
} from './checks/options.ts'
export { databaseFindingCodes, type DatabaseFindingCode } from './checks/codes.ts'
