/**
 * Each test file gets its own database on the server that `npm test` started (or on the one that
 * DATABASE_URL names). Roles are cluster-wide, so tests that create roles must name them with
 * {@link TestDatabase.prefix}.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'

export interface TestDatabase {
  /** The database's name, also a safe prefix for cluster-wide names such as roles. */
  readonly name: string
  readonly prefix: string
  /** A superuser URL for this database. */
  readonly url: string
  /** A superuser pool on this database (bypasses RLS: use it to arrange and inspect). */
  readonly pool: pg.Pool
  /** A URL for this database as another role. */
  urlAs(user: string, password: string): string
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export function serverUrl(): string {
  const url = process.env.DATABASE_URL
  if (!url) {
    throw new Error(
      'DATABASE_URL is not set: run the tests with `npm test`, which starts PostgreSQL',
    )
  }
  return url
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

/**
 * A name for a database a test file has something else create (keyhole/testing's scratch
 * database): the pattern `npm test` drops at the end, with the roles named after it.
 */
export function scratchName(): string {
  return `kh_${randomBytes(5).toString('hex')}`
}

/**
 * Creates a fresh database for one test. Databases and roles (`kh_…`) are dropped by `npm test`
 * (test/run.ts) once every test process has exited: dropping them from inside a test file would
 * kill the connections of apps and pools that are still closing.
 */
export async function createTestDatabase(t: Teardown): Promise<TestDatabase> {
  const admin = serverUrl()
  const name = `kh_${randomBytes(5).toString('hex')}`
  const root = new pg.Client({ connectionString: admin })
  await root.connect()
  await root.query(`CREATE DATABASE ${name}`)
  await root.end()
  const url = withDatabase(admin, name)
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  t.teardown(() => pool.end())
  return {
    name,
    prefix: name,
    url,
    pool,
    urlAs(user, password) {
      const u = new URL(url)
      u.username = encodeURIComponent(user)
      u.password = encodeURIComponent(password)
      return u.toString()
    },
  }
}
