/**
 * keyhole's notes database (./keyhole.ts) with a hidden column: `notes.secret`, which no runtime
 * caller may read or write, withheld from the runtime role by keyhole's generated policy SQL.
 */
import pg from 'pg'
import { applyPolicies } from '../../../src/db/policy-sql.ts'
import type { CheckDatabaseOptions } from '../../../src/db/check-database.ts'
import { KEYHOLE_FUNCTIONS } from '../../../src/db/keyhole-sql.ts'
import { definePolicies, type Policies } from '../../../src/sql/policies.ts'
import { createKeyholeDatabase, notesPolicies, type KeyholeDatabase } from './keyhole.ts'

/** The notes' policies, `secret` hidden. */
export const hiddenNotesPolicies = definePolicies({
  notes: {
    ...notesPolicies.tables.notes,
    columns: { read: { member: ['id', 'group_id', 'owner', 'body'] }, hidden: ['secret'] },
  },
})

export interface HiddenColumnDatabase extends KeyholeDatabase {
  /** The start-up checks' options, as the adapters build them from the policies. */
  readonly checks: CheckDatabaseOptions
  /** Runs SQL as the migration role (the tables' owner), as the application's migrations do. */
  asMigrator(sql: string): Promise<void>
  /** Applies the policy SQL of `policies` as `keyhole migrate` does. */
  applyPolicies(policies?: Policies): Promise<void>
}

export async function createHiddenColumnDatabase(t: {
  teardown(fn: () => unknown): void
}): Promise<HiddenColumnDatabase> {
  const k = await createKeyholeDatabase(t)
  const asMigrator = async (sql: string) => {
    const client = new pg.Client({ connectionString: k.migratorUrl })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  const apply = async (policies: Policies = hiddenNotesPolicies) => {
    const client = new pg.Client({ connectionString: k.migratorUrl })
    await client.connect()
    try {
      await applyPolicies(client, policies, { runtimeRole: k.runtime.name })
    } finally {
      await client.end()
    }
  }
  await asMigrator(`ALTER TABLE notes ADD COLUMN secret text`)
  await k.db.pool.query(`UPDATE notes SET secret = 'hash of ' || owner`)
  await apply()
  return {
    ...k,
    checks: {
      guardedTables: [
        { table: 'public.notes', operations: ['select', 'insert', 'update', 'delete'] },
      ],
      migrationRole: k.migrator.name,
      keyholeFunctions: [...KEYHOLE_FUNCTIONS],
      policies: hiddenNotesPolicies,
      signingKey: k.signingKey,
    },
    asMigrator,
    applyPolicies: apply,
  }
}
