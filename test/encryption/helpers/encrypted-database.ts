/**
 * A database prepared by keyhole's real `setup` and `migrate`, with tables whose columns keyhole
 * encrypts:
 * - `groups`: `invite_code` encrypted, `email` encrypted with its blind index `email_index`, row
 *   key `id` (uuid); members read, admins insert, moderators update and delete; the system context
 *   reads, inserts and updates;
 * - `codes`: `secret` encrypted, row key `code` (text, nullable: a lost key); members read and
 *   insert;
 * - `teams`: `invite_code` encrypted and readable by moderators only (column rules);
 * - `plain_groups`: the same columns as `groups`, nothing encrypted (the baseline).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { migrate } from '../../../src/db/migrate.ts'
import { setup } from '../../../src/db/setup.ts'
import { adminOnly, inGroup } from '../../../src/sql/guard.ts'
import { definePolicies } from '../../../src/sql/policies.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

export const encryptedPolicies = definePolicies({
  groups: {
    read: inGroup('id', 'member'),
    insert: adminOnly(),
    update: inGroup('id', 'moderator'),
    delete: inGroup('id', 'moderator'),
    system: ['read', 'insert', 'update'],
    encrypted: ['invite_code', { column: 'email', blindIndex: 'email_index' }],
  },
  codes: {
    read: inGroup('group_id', 'member'),
    insert: inGroup('group_id', 'member'),
    encrypted: { rowKey: 'code', columns: ['secret'] },
  },
  // Column rules and encryption on one table: members read id and name, moderators every column.
  teams: {
    read: inGroup('id', 'member'),
    insert: adminOnly(),
    update: inGroup('id', 'moderator'),
    columns: {
      read: { member: ['id', 'name'], moderator: '*' },
      write: { moderator: ['invite_code'], admin: '*' },
    },
    encrypted: ['invite_code'],
  },
  plain_groups: {
    read: inGroup('id', 'member'),
    insert: adminOnly(),
    update: adminOnly(),
    delete: adminOnly(),
  },
})

const tables = `
CREATE TABLE public.groups (
  id uuid PRIMARY KEY, name text NOT NULL, invite_code text, email text, email_index text
);
CREATE INDEX ON public.groups (email_index);
CREATE TABLE public.codes (id serial PRIMARY KEY, code text UNIQUE, group_id uuid NOT NULL, secret text);
CREATE TABLE public.teams (id uuid PRIMARY KEY, name text NOT NULL, invite_code text);
CREATE TABLE public.plain_groups (
  id uuid PRIMARY KEY, name text NOT NULL, invite_code text, email text, email_index text
);
`

export interface EncryptedDatabase {
  readonly db: TestDatabase
  readonly signingKey: string
  /** A pool of the RUNTIME role, ended at teardown. */
  runtimePool(max?: number): pg.Pool
}

export async function createEncryptedDatabase(t: Teardown): Promise<EncryptedDatabase> {
  const db = await createTestDatabase(t)
  const migrator = {
    name: `${db.prefix}_migrator`,
    password: randomBytes(18).toString('base64url'),
  }
  const runtime = { name: `${db.prefix}_runtime`, password: randomBytes(18).toString('base64url') }
  const { signingKey } = await setup(db.url, { migrationRole: migrator, runtimeRole: runtime })
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-encrypted-'))
  await writeFile(join(dir, '000001.do.tables.sql'), tables)
  await migrate(db.urlAs(migrator.name, migrator.password), {
    migrationsDir: dir,
    policies: encryptedPolicies,
    runtimeRole: runtime.name,
  })
  const runtimeUrl = db.urlAs(runtime.name, runtime.password)
  return {
    db,
    signingKey,
    runtimePool(max = 2) {
      const pool = new pg.Pool({ connectionString: runtimeUrl, max })
      t.teardown(() => pool.end())
      return pool
    },
  }
}
