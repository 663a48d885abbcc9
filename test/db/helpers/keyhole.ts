/**
 * A database prepared by keyhole's real `setup` and `migrate`: a migration role, a runtime role,
 * the `keyhole` schema with a signing key, and a tiny guarded table `public.notes` whose RLS
 * policies are keyhole's recorded policy SQL for {@link notesPolicies}, applied by the migration
 * as an application would. Rows are arranged through the superuser pool, which bypasses RLS.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { Capability } from '../../../src/capability/capability.ts'
import { migrate } from '../../../src/db/migrate.ts'
import { policySql } from '../../../src/db/policy-sql.ts'
import { setup } from '../../../src/db/setup.ts'
import { onParameter } from '../../../src/db/setup-sealed.ts'
import { and, inGroup, isSubject } from '../../../src/sql/guard.ts'
import { definePolicies } from '../../../src/sql/policies.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts'
import { makeCapability, type CapabilitySpec } from '../../helpers/sql-capability.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Role {
  readonly name: string
  readonly password: string
}

export interface KeyholeDatabase {
  readonly db: TestDatabase
  readonly migrator: Role
  readonly runtime: Role
  readonly signingKey: string
  readonly runtimeUrl: string
  readonly migratorUrl: string
  /** Two groups with one note each: group A's note by alice, group B's by bob. */
  readonly groupA: string
  readonly groupB: string
  /** A pool of the RUNTIME role, ended at teardown. */
  runtimePool(max?: number): pg.Pool
}

const notes = `
CREATE TABLE public.notes (
  id serial PRIMARY KEY,
  group_id uuid NOT NULL,
  owner text NOT NULL,
  body text NOT NULL
);
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
`

/**
 * The notes' rules: members read their groups' notes and write their own into them; moderators
 * change and delete them.
 */
export const notesPolicies = definePolicies({
  notes: {
    read: inGroup('group_id', 'member'),
    insert: and(inGroup('group_id', 'member'), isSubject('owner')),
    update: inGroup('group_id', 'moderator'),
    delete: inGroup('group_id', 'moderator'),
  },
})

export async function createKeyholeDatabase(t: Teardown): Promise<KeyholeDatabase> {
  const db = await createTestDatabase(t)
  const migrator = {
    name: `${db.prefix}_migrator`,
    password: randomBytes(18).toString('base64url'),
  }
  const runtime = { name: `${db.prefix}_runtime`, password: randomBytes(18).toString('base64url') }
  const { signingKey } = await setup(db.url, { migrationRole: migrator, runtimeRole: runtime })
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-migrations-'))
  await writeFile(join(dir, '000001.do.notes.sql'), notes)
  await writeFile(
    join(dir, '000002.do.notes-policies.sql'),
    policySql(notesPolicies, { runtimeRole: runtime.name }),
  )
  const migratorUrl = db.urlAs(migrator.name, migrator.password)
  await migrate(migratorUrl, { migrationsDir: dir })
  const groupA = randomUUID()
  const groupB = randomUUID()
  await db.pool.query(
    `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'alice', 'a'), ($2, 'bob', 'b')`,
    [groupA, groupB],
  )
  const runtimeUrl = db.urlAs(runtime.name, runtime.password)
  return {
    db,
    migrator,
    runtime,
    signingKey,
    runtimeUrl,
    migratorUrl,
    groupA,
    groupB,
    runtimePool(max = 2) {
      const pool = new pg.Pool({ connectionString: runtimeUrl, max })
      t.teardown(() => pool.end())
      return pool
    },
  }
}

/** A capability (see test/helpers/sql-capability.ts) with an optional `exp` (seconds). */
export function capability(spec: CapabilitySpec & { expiresAt?: number } = {}): Capability {
  return Object.freeze({ ...makeCapability(spec), expiresAt: spec.expiresAt })
}

/**
 * SQL: the capability set_capability stored in this transaction, in either store (sql/000004:
 * the sealed `backtrace_functions`, beside which `keyhole.capability` holds the body, or the
 * signed `keyhole.capability`), or '' when there is none.
 */
export const storedCapability = `coalesce(nullif(current_setting('backtrace_functions'), ''),
  nullif(current_setting('keyhole.capability', true), ''), '')`

/**
 * Runs a GRANT or REVOKE on a parameter (or DROP OWNED) as setup does: in a transaction, again when
 * another test file's setup changed the cluster-wide privileges first (see onParameter).
 */
export async function onParameterPrivileges(pool: pg.Pool, sql: string): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await onParameter(client, sql)
    await client.query('COMMIT')
  } finally {
    client.release()
  }
}
