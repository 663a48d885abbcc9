/**
 * The forum's database, in the two steps of production and the one of development:
 * - `setupDatabase(adminUrl, …)` (the setup step, `npm run example -- setup`): keyhole's setup (the
 *   migration and runtime roles, their grants, the `keyhole` schema and the capability-signing
 *   key), then keyhole's migrations and the forum's with the RLS policies generated from
 *   `policies.ts`, run as the migration role. Returns what it created and every drift it repaired,
 *   each with the start-up finding's code.
 * - `connectRuntime(url)` (the serve step): a pool as the runtime role; nothing is changed.
 * - `prepareDatabase(privilegedUrl)` (development): the setup step with fresh passwords on every
 *   start, then a pool as the runtime role.
 */
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { migrate, setup } from 'keyhole'
import { policies } from './policies.ts'

export interface RoleNames {
  readonly migration: string
  readonly runtime: string
}

export const defaultRoles: RoleNames = { migration: 'forum_migrator', runtime: 'forum_app' }

const migrationsDir = fileURLToPath(new URL('./migrations/', import.meta.url))

/** A drift the setup step repaired: the start-up finding's code and one line, never a secret. */
export interface Repair {
  readonly code: string
  readonly message: string
}

export interface SetupReport {
  /** What did not exist before: the roles, the signing key. */
  readonly created: readonly string[]
  readonly repairs: readonly Repair[]
}

export interface SetupStepOptions {
  readonly migrationPassword: string
  readonly runtimePassword: string
  /** The capability-signing key (base64url); undefined: a new one. */
  readonly signingKey?: string | undefined
  readonly roles?: Partial<RoleNames> | undefined
}

export interface PreparedDatabase extends SetupReport {
  /** A pool connected as the runtime role. */
  readonly pool: pg.Pool
  readonly signingKey: string
}

function urlAs(url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = encodeURIComponent(user)
  u.password = encodeURIComponent(password)
  return u.toString()
}

/**
 * The guarded tables that do not exist yet: the migrations about to run create them, which is
 * creation, not a repair.
 *
 * ```sql
 * SELECT e.t AS "table" FROM unnest($1::text[]) WITH ORDINALITY AS e(t, n)
 * WHERE to_regclass(e.t) IS NULL ORDER BY e.n
 * ```
 */
async function missingTables(runtimeUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: runtimeUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ table: string }>(
      `SELECT e.t AS "table" FROM unnest($1::text[]) WITH ORDINALITY AS e(t, n)
       WHERE pg_catalog.to_regclass(e.t) IS NULL ORDER BY e.n`,
      [Object.keys(policies.tables).map((table) => `public.${table}`)],
    )
    return rows.map((row) => row.table)
  } finally {
    await client.end()
  }
}

/**
 * The setup step. Setup reports its own repairs (role attributes, memberships, privileges); the
 * migrations reapply row-level security and the policies, and `migrate` reports what that
 * repaired on the tables that existed before (a table they create is creation, not drift).
 */
export async function setupDatabase(
  adminUrl: string,
  options: SetupStepOptions,
): Promise<SetupReport & { readonly signingKey: string; readonly runtimeUrl: string }> {
  const names = { ...defaultRoles, ...options.roles }
  const result = await setup(adminUrl, {
    migrationRole: { name: names.migration, password: options.migrationPassword },
    runtimeRole: { name: names.runtime, password: options.runtimePassword },
    signingKey: options.signingKey,
  })
  const runtimeUrl = urlAs(adminUrl, names.runtime, options.runtimePassword)
  const created = await missingTables(runtimeUrl)
  const migrated = await migrate(urlAs(adminUrl, names.migration, options.migrationPassword), {
    migrationsDir,
    policies,
    runtimeRole: names.runtime,
  })
  return {
    created: [...result.created, ...created.map((table) => `table ${table}`)],
    repairs: [...result.repairs, ...migrated.repairs],
    signingKey: result.signingKey,
    runtimeUrl,
  }
}

/** The serve step: a pool as the runtime role, with the settings of `url`. Changes nothing. */
export function connectRuntime(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    // pg's default closes a connection idle for 10 s, and the next request logs in again (SCRAM,
    // several milliseconds) and parses its statements again: keep them for a minute.
    idleTimeoutMillis: 60_000,
    // Plan each prepared statement once per connection. Under RLS a plan carries the policies, and
    // planning the thread list costs 200–300 µs. PostgreSQL's default re-plans a statement on every
    // execution when its generic plan does not look cheaper than the custom ones, and one group
    // holding most threads decides that by the sample ANALYZE happened to take: the HTTP bench's
    // GET ran at 0.59–0.63× `@fastify/jwt` with a plan per request, 0.69–0.83× with one per
    // connection. The forum's statements are all keyed by an indexed group or id, where the
    // generic plan is as good as a custom one. Sent at login: keyhole's reset (RESET ALL) keeps it.
    options: '-c plan_cache_mode=force_generic_plan',
  })
  // An idle client whose connection dropped (a server restart, or the embedded server stopping
  // during shutdown) is removed by pg, and the next query connects afresh; without a listener the
  // 'error' event would crash the process instead (pg's documented advice).
  pool.on('error', () => {})
  return pool
}

/**
 * True when the role of `url` may create roles (a superuser, or CREATEROLE): the development
 * convenience, where the serving process runs setup itself. The runtime role never may.
 *
 * ```sql
 * SELECT rolsuper OR rolcreaterole AS privileged FROM pg_roles WHERE rolname = current_user
 * ```
 */
export async function canCreateRoles(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ privileged: boolean }>(
      'SELECT rolsuper OR rolcreaterole AS privileged FROM pg_roles WHERE rolname = current_user',
    )
    return rows[0]!.privileged
  } finally {
    await client.end()
  }
}

/** Development: the setup step with fresh passwords (idempotent: safe on every start), then a pool. */
export async function prepareDatabase(
  privilegedUrl: string,
  roles: Partial<RoleNames> = {},
): Promise<PreparedDatabase> {
  // Fresh passwords on every start: setup sets them, and nothing outside this process needs them.
  const report = await setupDatabase(privilegedUrl, {
    migrationPassword: randomBytes(24).toString('base64url'),
    runtimePassword: randomBytes(24).toString('base64url'),
    roles,
  })
  const { created, repairs, signingKey, runtimeUrl } = report
  return { created, repairs, signingKey, pool: connectRuntime(runtimeUrl) }
}

/**
 * Where `build()` gets its database: `runtime` (the serve step: the runtime role's URL and the
 * signing key setup installed; nothing is changed) or `databaseUrl` (development: a role allowed to
 * create roles, with which the process runs the setup step itself at every start).
 */
export interface DatabaseChoice {
  readonly runtime?: { readonly url: string; readonly signingKey: string } | undefined
  /** A role allowed to create roles (e.g. a superuser): used for setup and migrations only. */
  readonly databaseUrl?: string | undefined
  /** Role names for the migration and runtime roles; default `forum_migrator` and `forum_app`. */
  readonly roles?: Partial<RoleNames> | undefined
}

/** A line for the server's log once it has one: what the development convenience did. */
export interface StartupLogLine {
  readonly level: 'warn' | 'info'
  readonly message: string
  readonly fields: Record<string, unknown>
}

export const PRIVILEGED_WARNING =
  'the serving process holds privileged database credentials (a role that may create roles) and ran setup and the migrations at start: for development only; in production run `npm run example -- setup` as a separate step and serve with the runtime role'

/** Connects as the runtime role, preparing the database first in development; see DatabaseChoice. */
export async function connectDatabase(
  choice: DatabaseChoice,
): Promise<{ pool: pg.Pool; signingKey: string; log: StartupLogLine[] }> {
  if (choice.runtime !== undefined) {
    return {
      pool: connectRuntime(choice.runtime.url),
      signingKey: choice.runtime.signingKey,
      log: [],
    }
  }
  if (choice.databaseUrl === undefined) {
    throw new TypeError('build(): give runtime (the serve step) or databaseUrl (development)')
  }
  const prepared = await prepareDatabase(choice.databaseUrl, choice.roles)
  return {
    pool: prepared.pool,
    signingKey: prepared.signingKey,
    log: [
      { level: 'warn', message: PRIVILEGED_WARNING, fields: {} },
      ...prepared.created.map((what) => ({
        level: 'info' as const,
        message: `created ${what}`,
        fields: {},
      })),
      ...prepared.repairs.map((repair) => ({
        level: 'warn' as const,
        message: `repaired ${repair.code}: ${repair.message}`,
        fields: { code: repair.code },
      })),
    ],
  }
}
