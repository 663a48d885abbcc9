import { setup } from '../db/setup.ts'
import { generateSigningKey } from '../db/signing-key.ts'
import { parse, required, UsageError, type Command } from './io.ts'

/** What setup says of the capability store (sql/000003, docs/security-model.md). */
export const storeLine = {
  sealed:
    'capability store: sealed (the migration role may SET backtrace_functions; the runtime role may not)',
  signed:
    'capability store: signed (the migration role may not SET backtrace_functions: PostgreSQL 14, or setup may not grant it; see docs/deploying.md)',
} as const

export const setupCommand: Command = {
  name: 'setup',
  summary: 'create the roles, privileges, keyhole schema and signing key (idempotent)',
  usage: `keyhole setup --migration-role NAME --runtime-role NAME [--schema NAME]... (--generate-key | --keep-key)

Connects with KEYHOLE_ADMIN_URL (or --database-url), a role allowed to create roles.
Passwords come from KEYHOLE_MIGRATION_PASSWORD and KEYHOLE_RUNTIME_PASSWORD; they are never printed.
The signing key comes from KEYHOLE_SIGNING_KEY; --generate-key makes one and prints it once on stdout;
--keep-key leaves the stored key as it is.
Reports on stderr what it created, and each repair as \`repaired KH_…: …\` naming the start-up
finding it corrected (or "no repairs").`,
  async run(args, io) {
    const flags = parse(args, {
      'database-url': { type: 'string' },
      'migration-role': { type: 'string' },
      'runtime-role': { type: 'string' },
      schema: { type: 'string', multiple: true },
      'generate-key': { type: 'boolean' },
      'keep-key': { type: 'boolean' },
    })
    if (flags.help) return (io.out(this.usage), 0)
    const url = required(
      flags['database-url'] ?? io.env.KEYHOLE_ADMIN_URL,
      'KEYHOLE_ADMIN_URL (or --database-url)',
    )
    const given = io.env.KEYHOLE_SIGNING_KEY || undefined
    const choices = [
      given !== undefined,
      flags['generate-key'] === true,
      flags['keep-key'] === true,
    ]
    if (choices.filter(Boolean).length !== 1) {
      throw new UsageError('set exactly one of KEYHOLE_SIGNING_KEY, --generate-key or --keep-key')
    }
    const signingKey = flags['keep-key'] ? false : (given ?? generateSigningKey())
    const { repairs, created, capabilityStore } = await setup(url, {
      migrationRole: {
        name: required(flags['migration-role'], '--migration-role'),
        password: required(io.env.KEYHOLE_MIGRATION_PASSWORD, 'KEYHOLE_MIGRATION_PASSWORD'),
      },
      runtimeRole: {
        name: required(flags['runtime-role'], '--runtime-role'),
        password: required(io.env.KEYHOLE_RUNTIME_PASSWORD, 'KEYHOLE_RUNTIME_PASSWORD'),
      },
      schemas: flags.schema,
      signingKey,
    })
    if (flags['generate-key']) io.out(signingKey as string)
    // On stderr, as the rest of the report: stdout carries only the generated key.
    for (const what of created) io.err(`created ${what}`)
    for (const repair of repairs) io.err(`repaired ${repair.code}: ${repair.message}`)
    if (repairs.length === 0)
      io.err('no repairs: the roles and privileges were as setup leaves them')
    io.err(storeLine[capabilityStore])
    io.err('keyhole setup: done')
    return 0
  },
}
