/**
 * The start-up checks: keyhole refuses to serve from a database where the runtime role could
 * step around row-level security. Each check is one small function over the catalogs (see
 * `checks/`), run on the RUNTIME connection as `current_user`.
 */
import { InsecureDatabase, type DatabaseFinding } from '../errors.ts'
import { checkCapabilityParameter, checkCapabilityStore } from './checks/capability-parameter.ts'
import { checkColumnPrivileges } from './checks/column-privileges.ts'
import { checkCreatePrivileges } from './checks/create-privileges.ts'
import { checkExactPolicies } from './checks/exact-policies.ts'
import {
  connectFailed,
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
import { checkSigningKeyMismatch } from './checks/signing-key-mismatch.ts'
import { checkStatementStats } from './checks/statement-stats.ts'
import { checkTls } from './checks/tls.ts'
import { checkTablePrivileges } from './checks/table-privileges.ts'
import { checkUnguardedTables } from './checks/unguarded-tables.ts'
import { checkViews } from './checks/views.ts'

/** The checks in report order (SECURITY-CASES.md's numbering). */
const checks: readonly Check[] = [
  checkRoleAttributes,
  checkMemberships,
  checkGuardedTables,
  checkTablePrivileges,
  checkColumnPrivileges,
  checkCreatePrivileges,
  checkPolicies,
  checkExactPolicies,
  checkViews,
  checkStatementStats,
  checkSecurityDefiner,
  checkKeyholeFunctions,
  checkCapabilityParameter,
  checkCapabilityStore,
  checkLeakproof,
  checkSettings,
  checkUnguardedTables,
  checkSigningKey,
  checkSigningKeyMismatch,
  checkTls,
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

/**
 * The schemas of the search_path that exist and may be used. `current_schemas(false)` creates the
 * session's temporary schema when the path names `pg_temp`, and fails without TEMPORARY on the
 * database: a `search_path = pg_temp` the runtime role gave itself must be reported
 * (KH_DB_ROLE_SETTING), not stop the checks. Then the path is read from its text instead.
 */
const searchPathSql = `CASE
  WHEN has_database_privilege(current_database(), 'TEMPORARY')
    OR current_setting('search_path') !~* '(^|,)\\s*"?pg_temp"?\\s*(,|$)'
  THEN current_schemas(false)::text[]
  ELSE ARRAY(
    SELECT n.nspname::text
    FROM unnest(string_to_array(current_setting('search_path'), ',')) WITH ORDINALITY AS s(part, i)
    JOIN pg_namespace n ON n.nspname = CASE WHEN btrim(s.part) IN ('$user', '"$user"')
      THEN current_user::text ELSE (parse_ident(btrim(s.part)))[1] END
    WHERE has_schema_privilege(n.oid, 'USAGE') ORDER BY s.i)
  END`

async function readRuntime(db: CheckQueryable): Promise<RuntimeFacts> {
  const [r] = await rows<RuntimeRow>(
    db,
    `SELECT r.oid, r.rolname::text AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       r.rolcreaterole AS create_role, r.rolcreatedb AS create_db, r.rolreplication AS replication,
       current_setting('server_version_num')::int AS server_version,
       current_setting('row_security') AS row_security,
       ${searchPathSql} AS search_path
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
 * Given a pg `Pool` (anything with pg-pool's `Client` and `options`), the checks run on a NEW
 * connection opened with the pool's own settings, never on a pooled one, and a connection that
 * fails is the finding KH_DB_CONNECT_FAILED: the runtime role may always change its own password
 * (`ALTER ROLE CURRENT_USER PASSWORD …`), which locks the application out only as its pool opens
 * new connections. Given a `Client` (or a `PoolClient`), they run on that session.
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
  if (!opensConnections(queryable)) return run(queryable, resolved)
  const client = new queryable.Client(queryable.options)
  // A connection the server ends mid-run fails the query that runs then; the event adds nothing.
  client.on('error', ignore)
  try {
    await client.connect()
  } catch (error) {
    return [connectFailed(error)]
  }
  try {
    return await run(client, resolved)
  } finally {
    await client.end()
  }
}

/** The part of a pg `Pool` that opens a connection as the pool itself would (pg-pool's newClient). */
interface OpensConnections {
  readonly Client: new (options: object) => CheckQueryable & {
    connect(): Promise<unknown>
    end(): Promise<void>
    on(event: 'error', listener: () => void): unknown
  }
  readonly options: object
}

function opensConnections(queryable: object): queryable is OpensConnections {
  const pool = queryable as Partial<OpensConnections>
  return typeof pool.Client === 'function' && typeof pool.options === 'object'
}

/* c8 ignore next: only when the server ends the connection between two of the checks' queries */
const ignore = () => {}

async function run(
  queryable: CheckQueryable,
  resolved: ResolvedCheckOptions,
): Promise<DatabaseFinding[]> {
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
  HiddenColumnsOption,
  KeyholeFunctionExpectation,
} from './checks/options.ts'
export { databaseFindingCodes, type DatabaseFindingCode } from './checks/codes.ts'
export { capabilityStore } from './checks/capability-parameter.ts'
