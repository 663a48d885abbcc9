/**
 * `keyhole migrate`: keyhole's own SQL, then the application's numbered SQL migrations, then the
 * RLS policies generated from the application's policies, all as the MIGRATION role.
 */
import { loadPg } from './pg-driver.ts'
import type { GroupIdType } from '../capability/capability.ts'
import type { Policies } from '../sql/policies.ts'
import { applySqlDirectory, KEYHOLE_VERSION_TABLE, keyholeSqlDirectory } from './keyhole-sql.ts'
import { columnPrivilegeRepairs } from './column-repairs.ts'
import { guardedTableOids, policyRepairs, type MigrateRepair } from './migrate-repairs.ts'
import { applyPolicies } from './policy-sql.ts'

export type { MigrateRepair } from './migrate-repairs.ts'

/** Where the application's schema versions are recorded: in `keyhole`, out of the runtime role's reach. */
export const APPLICATION_VERSION_TABLE = 'keyhole.app_schemaversion'

export interface MigrateOptions {
  /** The application's postgrator folder (`000001.do.create-posts.sql`, …). */
  readonly migrationsDir?: string | undefined
  /** The application's policies: their RLS SQL is applied after the migrations. */
  readonly policies?: Policies | undefined
  /** The runtime role the policies apply to; required with `policies`. */
  readonly runtimeRole?: string | undefined
  /** @default 'uuid' */
  readonly groupIdType?: GroupIdType | undefined
}

export interface MigrateResult {
  /** The versions of keyhole's SQL applied now (empty when up to date). */
  readonly keyhole: readonly number[]
  /** The versions of the application's migrations applied now. */
  readonly application: readonly number[]
  /** Whether the policies were (re)applied. */
  readonly policies: boolean
  /**
   * What applying the policies corrected on the guarded tables that existed before this run's
   * application migrations: row-level security disabled or not forced, a keyhole policy missing,
   * changed by hand or from other policies, a stale keyhole policy (each with the start-up
   * finding's code). Empty without `policies`, and for tables this run created.
   */
  readonly repairs: readonly MigrateRepair[]
}

/**
 * Migrates the database `url` names, connecting as the migration role (run `setup` first).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for policies without a runtime role; postgrator's
 * or pg's error when a migration fails (the failing file is rolled back; earlier ones stay).
 * @example
 * await migrate(process.env.MIGRATION_URL, { migrationsDir: './migrations', policies, runtimeRole: 'app_runtime' })
 */
export async function migrate(url: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const client = new (loadPg("keyhole's migrate()").Client)({ connectionString: url })
  await client.connect()
  try {
    const keyhole = await applySqlDirectory(client, keyholeSqlDirectory(), KEYHOLE_VERSION_TABLE)
    const { policies } = options
    const before = policies === undefined ? [] : await guardedTableOids(client, policies)
    const application =
      options.migrationsDir === undefined
        ? []
        : await applySqlDirectory(client, options.migrationsDir, APPLICATION_VERSION_TABLE)
    let repairs: MigrateRepair[] = []
    if (policies !== undefined) {
      const runtimeRole = options.runtimeRole as string
      const groupIdType = options.groupIdType ?? 'uuid'
      repairs = await policyRepairs(client, policies, { runtimeRole, groupIdType }, before)
      repairs.push(...(await columnPrivilegeRepairs(client, policies, runtimeRole, before)))
      await applyPolicies(client, policies, { runtimeRole, groupIdType })
    }
    return { keyhole, application, policies: policies !== undefined, repairs }
  } finally {
    await client.end()
  }
}
