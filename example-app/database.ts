/**
 * Prepares the forum's database from a privileged URL: keyhole's setup (the migration and runtime
 * roles, their grants, the `keyhole` schema and the capability-signing key), then keyhole's own
 * migrations and the forum's, run as the migration role, with the RLS policies generated from
 * `policies.ts`. Returns a pool connected as the runtime role: it owns nothing and bypasses nothing.
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

const defaultRoles: RoleNames = { migration: 'forum_migrator', runtime: 'forum_app' }

const migrationsDir = fileURLToPath(new URL('./migrations/', import.meta.url))

export interface PreparedDatabase {
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

/** Runs setup and migrations (idempotent: safe on every start) and connects as the runtime role. */
export async function prepareDatabase(
  privilegedUrl: string,
  roles: Partial<RoleNames> = {},
): Promise<PreparedDatabase> {
  const names = { ...defaultRoles, ...roles }
  // Fresh passwords on every start: setup sets them, and nothing outside this process needs them.
  const migrationPassword = randomBytes(24).toString('base64url')
  const runtimePassword = randomBytes(24).toString('base64url')
  const { signingKey } = await setup(privilegedUrl, {
    migrationRole: { name: names.migration, password: migrationPassword },
    runtimeRole: { name: names.runtime, password: runtimePassword },
  })
  await migrate(urlAs(privilegedUrl, names.migration, migrationPassword), {
    migrationsDir,
    policies,
    runtimeRole: names.runtime,
  })
  const pool = new pg.Pool({
    connectionString: urlAs(privilegedUrl, names.runtime, runtimePassword),
  })
  // An idle client whose connection dropped (a server restart, or the embedded server stopping
  // during shutdown) is removed by pg, and the next query connects afresh; without a listener the
  // 'error' event would crash the process instead (pg's documented advice).
  pool.on('error', () => {})
  return { pool, signingKey }
}
