import { readdir } from 'node:fs/promises'
import type { GroupIdType } from '../capability/capability.ts'
import { migrate } from '../db/migrate.ts'
import { databaseUrl, parse, required, UsageError, type CliIo, type Command } from './io.ts'
import { loadPolicies, policiesModuleHelp } from './load-policies.ts'

export const groupIdTypes: readonly GroupIdType[] = ['uuid', 'bigint', 'integer', 'text']

export function groupIdType(value: string | undefined): GroupIdType {
  if (value === undefined) return 'uuid'
  if (!groupIdTypes.includes(value as GroupIdType)) {
    throw new UsageError(`--group-id-type must be one of ${groupIdTypes.join(', ')}`)
  }
  return value as GroupIdType
}

/** postgrator's files: `<version>.do.<name>.sql`. */
const migrationFile = /^\d+\.do\..+\.sql$/

/**
 * A missing folder is a mistake (a typo would otherwise report "0 migrations applied" and exit
 * 0); a folder without one migration file is worth a warning.
 */
async function checkMigrations(dir: string, io: CliIo): Promise<void> {
  let files: string[]
  try {
    files = await readdir(dir)
  } catch {
    throw new UsageError(`--migrations ${dir}: no such directory`)
  }
  if (!files.some((f) => migrationFile.test(f))) {
    io.err(
      `keyhole migrate: warning: --migrations ${dir} holds no NNNNNN.do.NAME.sql file (postgrator's names: 000001.do.create-posts.sql)`,
    )
  }
}

export const migrateCommand: Command = {
  name: 'migrate',
  summary: "apply keyhole's SQL, the application's migrations and the RLS policies",
  usage: `keyhole migrate [--migrations DIR] [--policies MODULE --runtime-role NAME [--group-id-type uuid]]

Connects as the migration role with KEYHOLE_MIGRATION_URL (or --database-url).
DIR holds postgrator files: 000001.do.name.sql, 000002.do.name.sql, …
Prints a line \`repaired CODE: …\` for each start-up finding applying the policies corrected on
a table that existed before (row-level security off or not forced, a policy missing or altered).
${policiesModuleHelp}`,
  async run(args, io) {
    const flags = parse(args, {
      'database-url': { type: 'string' },
      migrations: { type: 'string' },
      policies: { type: 'string' },
      'runtime-role': { type: 'string' },
      'group-id-type': { type: 'string' },
    })
    if (flags.help) return (io.out(this.usage), 0)
    const url = databaseUrl(flags['database-url'], io.env, 'KEYHOLE_MIGRATION_URL')
    if (flags.migrations !== undefined) await checkMigrations(flags.migrations, io)
    const type = groupIdType(flags['group-id-type'])
    const policies = flags.policies === undefined ? undefined : await loadPolicies(flags.policies)
    const runtimeRole =
      policies === undefined
        ? undefined
        : required(flags['runtime-role'], '--runtime-role (with --policies)')
    const result = await migrate(url, {
      migrationsDir: flags.migrations,
      policies,
      runtimeRole,
      groupIdType: type,
    })
    io.out(
      `keyhole: ${result.keyhole.length} keyhole and ${result.application.length} application migration(s) applied${result.policies ? '; policies applied' : ''}`,
    )
    for (const repair of result.repairs) io.out(`repaired ${repair.code}: ${repair.message}`)
    return 0
  },
}
