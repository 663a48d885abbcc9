import { capabilityStore, checkDatabase } from '../db/check-database.ts'
import { KEYHOLE_FUNCTIONS } from '../db/keyhole-sql.ts'
import { loadPg } from '../db/pg-driver.ts'
import type { GuardedOperation } from '../errors.ts'
import { databaseUrl, parse, required, UsageError, type Command } from './io.ts'
import { loadPolicies, policiesModuleHelp } from './load-policies.ts'
import { tableOperations } from '../sql/policies.ts'
import { groupIdType } from './migrate-command.ts'

const operations: Record<string, GuardedOperation> = {
  read: 'select',
  insert: 'insert',
  update: 'update',
  delete: 'delete',
}

export const checkCommand: Command = {
  name: 'check',
  summary: 'run the start-up checks as the runtime role and print a report (exit 1 on findings)',
  usage: `keyhole check --policies MODULE [--migration-role NAME] [--schema NAME]...
              [--unguarded-table SCHEMA.TABLE]... [--group-id-type uuid]

Connects as the RUNTIME role with KEYHOLE_RUNTIME_URL (or --database-url).
Tables without a schema in the policies are checked as public.<table>; their installed policies
must be exactly those generated from MODULE (with --group-id-type, as \`keyhole migrate\` made them).
--unguarded-table: a table the runtime role may reach without row-level security, on purpose
(checks.unguardedTables); repeat it for each.
With KEYHOLE_SIGNING_KEY set (the server's key), checks that the database accepts a capability
signed with it (KH_DB_SIGNING_KEY_MISMATCH otherwise).
${policiesModuleHelp}`,
  async run(args, io) {
    const flags = parse(args, {
      'database-url': { type: 'string' },
      policies: { type: 'string' },
      'migration-role': { type: 'string' },
      schema: { type: 'string', multiple: true },
      'unguarded-table': { type: 'string', multiple: true },
      'group-id-type': { type: 'string' },
    })
    if (flags.help) return (io.out(this.usage), 0)
    for (const table of flags['unguarded-table'] ?? []) {
      if (!/^[^.\s]+\.[^.\s]+$/.test(table)) {
        throw new UsageError('--unguarded-table must be SCHEMA.TABLE (public.audit_log)')
      }
    }
    const url = databaseUrl(flags['database-url'], io.env, 'KEYHOLE_RUNTIME_URL')
    const type = groupIdType(flags['group-id-type'])
    const signingKey = io.env.KEYHOLE_SIGNING_KEY || undefined
    const policies = await loadPolicies(required(flags.policies, '--policies'))
    /* c8 ignore next 4: the CLI test's policies name their schema; an unqualified name means public */
    const guardedTables = Object.entries(policies.tables).map(([table, policy]) => ({
      table: table.includes('.') ? table : `public.${table}`,
      operations: tableOperations(policy).map((op) => operations[op]!),
    }))
    const client = new (loadPg('keyhole check').Client)({ connectionString: url })
    await client.connect()
    try {
      const findings = await checkDatabase(client, {
        guardedTables,
        migrationRole: flags['migration-role'],
        applicationSchemas: flags.schema,
        keyholeFunctions: [...KEYHOLE_FUNCTIONS],
        unguardedTables: flags['unguarded-table'],
        policies,
        groupIdType: type,
        signingKey,
      })
      // Not a finding either way: the signed store is the fallback (docs/security-model.md).
      const store = `keyhole check: capability store: ${await capabilityStore(client)}`
      if (findings.length === 0) {
        io.out(`keyhole check: no findings (${guardedTables.length} guarded table(s))`)
        io.out(store)
        return 0
      }
      io.out(`keyhole check: ${findings.length} finding(s)`)
      for (const f of findings) io.out(`  - ${f.code}: ${f.message}\n    fix: ${f.fix}`)
      io.out(store)
      return 1
    } finally {
      await client.end()
    }
  },
}
