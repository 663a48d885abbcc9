/**
 * A database prepared by keyhole's real `setup` and `migrate` with three guarded tables and their
 * recorded policies, two of which declare `system` operations:
 * - `notes`: members read, moderators change; `system: ['read', 'delete']` (a retention job);
 * - `invitations`: moderators read; `system: ['read', 'insert', 'update']` (accepting one);
 * - `events`: members read; `system: ['insert']` (a log written across groups, never read back);
 * - `secrets`: members read; no `system`: a system context never reaches it.
 * Each table holds one row in group A and one in group B. Rows are arranged through the
 * superuser pool, which bypasses RLS.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { migrate } from '../../../src/db/migrate.ts'
import { setup } from '../../../src/db/setup.ts'
import { inGroup } from '../../../src/sql/guard.ts'
import { definePolicies } from '../../../src/sql/policies.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

export const systemPolicies = definePolicies({
  notes: {
    read: inGroup('group_id', 'member'),
    update: inGroup('group_id', 'moderator'),
    delete: inGroup('group_id', 'moderator'),
    system: ['read', 'delete'],
  },
  invitations: { read: inGroup('group_id', 'moderator'), system: ['update', 'insert', 'read'] },
  events: { read: inGroup('group_id', 'member'), system: ['insert'] },
  secrets: { read: inGroup('group_id', 'member') },
})

const tables = `
CREATE TABLE public.notes (id serial PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL);
CREATE TABLE public.invitations (
  id serial PRIMARY KEY, group_id uuid NOT NULL, email text NOT NULL,
  accepted boolean NOT NULL DEFAULT false
);
CREATE TABLE public.secrets (id serial PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL);
CREATE TABLE public.events (id serial PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL);
`

export interface SystemDatabase {
  readonly db: TestDatabase
  readonly runtime: { readonly name: string; readonly password: string }
  readonly signingKey: string
  readonly runtimeUrl: string
  readonly migratorUrl: string
  readonly groupA: string
  readonly groupB: string
  /** A pool of the RUNTIME role, ended at teardown. */
  runtimePool(max?: number): pg.Pool
  /** Puts the rows back as they were (the superuser pool). */
  reset(): Promise<void>
}

export async function createSystemDatabase(t: Teardown): Promise<SystemDatabase> {
  const db = await createTestDatabase(t)
  const migrator = {
    name: `${db.prefix}_migrator`,
    password: randomBytes(18).toString('base64url'),
  }
  const runtime = { name: `${db.prefix}_runtime`, password: randomBytes(18).toString('base64url') }
  const { signingKey } = await setup(db.url, { migrationRole: migrator, runtimeRole: runtime })
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-system-'))
  await writeFile(join(dir, '000001.do.tables.sql'), tables)
  const migratorUrl = db.urlAs(migrator.name, migrator.password)
  await migrate(migratorUrl, {
    migrationsDir: dir,
    policies: systemPolicies,
    runtimeRole: runtime.name,
  })
  const groupA = randomUUID()
  const groupB = randomUUID()
  const reset = async () => {
    await db.pool.query(`
      TRUNCATE notes, invitations, secrets, events RESTART IDENTITY;
      INSERT INTO notes (group_id, body) VALUES ('${groupA}', 'note a'), ('${groupB}', 'note b');
      INSERT INTO invitations (group_id, email) VALUES ('${groupA}', 'a@example.org'), ('${groupB}', 'b@example.org');
      INSERT INTO secrets (group_id, body) VALUES ('${groupA}', 'secret a'), ('${groupB}', 'secret b');`)
  }
  await reset()
  const runtimeUrl = db.urlAs(runtime.name, runtime.password)
  return {
    db,
    runtime,
    signingKey,
    runtimeUrl,
    migratorUrl,
    groupA,
    groupB,
    reset,
    runtimePool(max = 2) {
      const pool = new pg.Pool({ connectionString: runtimeUrl, max })
      t.teardown(() => pool.end())
      return pool
    },
  }
}
