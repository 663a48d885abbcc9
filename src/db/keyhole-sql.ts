/**
 * keyhole's own SQL (the numbered files in the package's `sql/` folder) and the postgrator runner
 * that applies numbered SQL folders.
 *
 * Why postgrator: plain numbered SQL files (the `sql/000001.do.name.sql` convention, each readable
 * on its own), MD5 checksums of applied files (an edited migration is refused), it runs on the pg
 * client we give it (`execQuery`, so the migration role's own connection, SET ROLE included), and
 * it is small, with no CLI or config files of its own.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Postgrator from 'postgrator'

/** The `keyhole` functions the runtime role may execute (the signatures `checkDatabase` takes). */
export const KEYHOLE_FUNCTIONS = Object.freeze([
  'keyhole.set_capability(text)',
  'keyhole.group_ids(text)',
  'keyhole.is_admin()',
  'keyhole.subject()',
  // The system context (sql/000002): a signed grant of named tables and operations.
  'keyhole.set_system(text)',
  'keyhole.system_allows(text,text)',
  // The unique-key test guarded writes run in 'rls' mode, answered while planning (sql/000005).
  'keyhole.sets_unique_key(regclass,name[])',
])

/**
 * What setup lets the runtime role execute: the functions above, and `keyhole.reset_session()`
 * (invoker rights on purpose: it resets the caller's own session; see sql/000001).
 */
export const KEYHOLE_RUNTIME_FUNCTIONS = Object.freeze([
  ...KEYHOLE_FUNCTIONS,
  'keyhole.reset_session()',
])

/** Where keyhole's schema versions are recorded (the runtime role has no access to `keyhole`). */
export const KEYHOLE_VERSION_TABLE = 'keyhole.schemaversion'

/** The folder of keyhole's SQL files: `sql/` at the package root, from src/ or from dist/src/. */
export function keyholeSqlDirectory(): string {
  const candidates = ['../../sql/', '../../../sql/'].map((p) => new URL(p, import.meta.url))
  const found = candidates.find((u) => existsSync(new URL('000001.do.keyhole-schema.sql', u)))
  /* c8 ignore next: the package always ships sql/ next to src/ or dist/src/ */
  if (found === undefined) throw new Error('keyhole: the package sql/ folder is missing')
  return fileURLToPath(found)
}

/** The part of a pg `Client` the runner uses. */
export interface MigrationClient {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

/**
 * Applies the `<version>.do.<name>.sql` files of `directory` that `versionTable` does not record
 * yet, in order, under an advisory lock (two deployments migrating at once wait for each other).
 * Returns the versions applied. Throws postgrator's error (checksum mismatch, SQL error).
 */
export async function applySqlDirectory(
  client: MigrationClient,
  directory: string,
  versionTable: string,
): Promise<number[]> {
  const postgrator = new Postgrator({
    driver: 'pg',
    migrationPattern: `${directory.replace(/\\/g, '/').replace(/\/$/, '')}/*.sql`,
    schemaTable: versionTable,
    execQuery: (query) => client.query(query),
  })
  await client.query(`SELECT pg_advisory_lock(hashtext('keyhole migrate'))`)
  try {
    // postgrator would run `CREATE SCHEMA IF NOT EXISTS`, which needs CREATE on the database even
    // when the schema exists; the migration role only owns its schemas. Create its table (the
    // same columns) ourselves, in the schema setup made.
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${versionTable} (version bigint PRIMARY KEY, name text, md5 text, run_at timestamptz);
       INSERT INTO ${versionTable} (version) VALUES (0) ON CONFLICT (version) DO NOTHING`,
    )
    const applied = await postgrator.migrate()
    return applied.map((m) => m.version)
  } finally {
    await client.query(`SELECT pg_advisory_unlock(hashtext('keyhole migrate'))`)
  }
}
