/**
 * The scratch database of a policy test: created on the server `databaseUrl` names, set up by
 * keyhole's own `setup` (a migration role and a runtime role named after it), migrated with the
 * application's migrations and policies, and dropped with both roles by `close`.
 */
import { randomBytes } from 'node:crypto'
import { setup } from '../db/setup.ts'
import { migrate } from '../db/migrate.ts'
import { applyPolicies } from '../db/policy-sql.ts'
import { requirePg } from '../db/pg-driver.ts'
import type { GroupIdType } from '../capability/capability.ts'
import { ConfigurationError } from '../errors.ts'
import { isIdentifier } from '../sql/identifier.ts'
import type { Policies } from '../sql/policies.ts'

/** A query result in the part keyhole/testing reads. */
export interface AdminResult<R> {
  readonly rows: R[]
  readonly rowCount: number | null
}

/** A connection to the scratch database (pg's `Client`, in the part keyhole/testing uses). */
export interface AdminClient {
  // `any` by default, as pg's own `query<R = any>`: the caller names the row type it reads.
  query<R = any>(text: string, values?: readonly unknown[]): Promise<AdminResult<R>>
}

interface PgClient extends AdminClient {
  connect(): Promise<unknown>
  end(): Promise<void>
  escapeIdentifier(name: string): string
}

interface PgPool {
  connect(): Promise<AdminClient & { release(error?: Error | boolean): void }>
  end(): Promise<void>
  on(event: 'error', listener: (error: Error) => void): unknown
}

interface PgModule {
  readonly Client: new (config: { connectionString: string }) => PgClient
  readonly Pool: new (config: { connectionString: string; max: number }) => PgPool
}

/**
 * The application's migrations: a postgrator folder (as `keyhole migrate` applies it), or a
 * function that runs them on a connection of the migration role (the tables' owner).
 */
export type Migrations = string | ((client: AdminClient) => Promise<void>)

export interface ScratchOptions {
  readonly databaseUrl: string
  readonly database?: string | undefined
  readonly schemas?: readonly string[] | undefined
  readonly migrations?: Migrations | undefined
  readonly policies: Policies
  readonly groupIdType: GroupIdType
}

export interface ScratchDatabase {
  readonly name: string
  /** The administrator's connection to the scratch database (bypasses row-level security). */
  readonly admin: AdminClient
  /** A pool of the runtime role (row-level security forced on it). */
  readonly runtime: PgPool
  readonly runtimeRole: string
  readonly signingKey: string
  close(): Promise<void>
}

function urlFor(url: string, database: string, user?: string, password?: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  if (user !== undefined) {
    u.username = encodeURIComponent(user)
    u.password = encodeURIComponent(password as string)
  }
  return u.toString()
}

async function connected(pg: PgModule, url: string): Promise<PgClient> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  return client
}

async function migrateScratch(url: string, options: ScratchOptions, runtimeRole: string) {
  const { migrations, policies, groupIdType } = options
  if (typeof migrations !== 'function') {
    await migrate(url, { migrationsDir: migrations, policies, runtimeRole, groupIdType })
    return
  }
  await migrate(url)
  const pg = requirePg('pg', 'keyhole/testing') as PgModule
  const client = await connected(pg, url)
  try {
    await migrations(client)
    await applyPolicies(client, policies, { runtimeRole, groupIdType })
  } finally {
    await client.end()
  }
}

/** Creates, sets up and migrates the scratch database. */
export async function createScratchDatabase(options: ScratchOptions): Promise<ScratchDatabase> {
  const pg = requirePg('pg', 'keyhole/testing') as PgModule
  const name = options.database ?? `keyhole_test_${randomBytes(5).toString('hex')}`
  if (!isIdentifier(name) || name.length > 40) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'database must be a plain identifier of at most 40 characters (its roles are named after it)',
    )
  }
  const server = await connected(pg, options.databaseUrl)
  const drop = async () => {
    await server.query(`DROP DATABASE IF EXISTS ${server.escapeIdentifier(name)} WITH (FORCE)`)
    // DROP OWNED first: setup grants the migration role SET on a parameter (the sealed capability),
    // a cluster-wide privilege that DROP ROLE alone refuses to leave behind.
    const { rows } = await server.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE rolname = ANY ($1)',
      [[`${name}_migrator`, `${name}_runtime`]],
    )
    for (const { rolname } of rows) {
      const r = server.escapeIdentifier(rolname)
      // Another setup changing the parameter's privileges at the same time fails it (XX000): again.
      for (let attempt = 1; ; attempt++) {
        try {
          await server.query(`DROP OWNED BY ${r}; DROP ROLE ${r}`)
          break
          /* c8 ignore start: only when a concurrent setup won the race */
        } catch (error) {
          if (attempt === 5 || (error as { code?: string }).code !== 'XX000') throw error
        }
      }
      /* c8 ignore stop */
    }
  }
  const migrationRole = { name: `${name}_migrator`, password: randomBytes(18).toString('hex') }
  const runtimeRole = { name: `${name}_runtime`, password: randomBytes(18).toString('hex') }
  const adminUrl = urlFor(options.databaseUrl, name)
  let signingKey: string
  try {
    await server.query(`CREATE DATABASE ${server.escapeIdentifier(name)}`)
    ;({ signingKey } = await setup(adminUrl, {
      migrationRole,
      runtimeRole,
      schemas: options.schemas,
    }))
    await migrateScratch(
      urlFor(options.databaseUrl, name, migrationRole.name, migrationRole.password),
      options,
      runtimeRole.name,
    )
  } catch (error) {
    await drop()
    await server.end()
    throw error
  }
  const admin = await connected(pg, adminUrl)
  const runtime = new pg.Pool({
    connectionString: urlFor(options.databaseUrl, name, runtimeRole.name, runtimeRole.password),
    max: 1,
  })
  // An idle client whose backend the server ends (DROP DATABASE … WITH (FORCE) in close(), which
  // can reach a backend pg's pool.end() has not finished closing; an administrator; a restart) is
  // emitted as the pool's 'error': without a listener, an uncaught exception in the user's test
  // run. The pool has already dropped that client; the next query connects anew.
  runtime.on('error', () => {})
  return {
    name,
    admin,
    runtime,
    runtimeRole: runtimeRole.name,
    signingKey,
    async close() {
      await runtime.end()
      await admin.end()
      await drop()
      await server.end()
    },
  }
}
