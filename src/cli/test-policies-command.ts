import { readdir, readFile } from 'node:fs/promises'
import { checkAccess, PolicyMismatch } from '../testing/policy-test.ts'
import type { AccessExpectations } from '../testing/expect-access.ts'
import type { AccessReport } from '../testing/report.ts'
import { resolveEmbeddedPostgres, testServer } from './embedded-postgres.ts'
import { databaseUrl, parse, required, UsageError, type Command } from './io.ts'
import { loadModule, loadPolicies, policiesModuleHelp } from './load-policies.ts'
import { groupIdType } from './migrate-command.ts'

/**
 * The expectation table in FILE: JSON, or a module's `expectations` (or default) export, the
 * plain object, `expectAccess(…)`'s builder (its `toJSON`), or a function that returns either.
 */
async function loadExpectations(file: string): Promise<AccessExpectations> {
  let value: unknown
  if (file.endsWith('.json')) {
    try {
      value = JSON.parse(await readFile(file, 'utf8'))
    } catch (error) {
      throw new UsageError(`cannot read the expectations ${file}: ${(error as Error).message}`)
    }
  } else {
    const module = await loadModule(file, 'expectations module')
    value = module.expectations ?? module.default
    if (typeof value === 'function') value = await (value as () => unknown)()
  }
  const builder = value as { toJSON?: unknown } | null
  if (typeof builder?.toJSON === 'function') value = (builder.toJSON as () => unknown)()
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(
      `${file} holds no expectations (export const expectations = expectAccess(policies)…, ` +
        'a table → caller → { can, partly } object, or a function returning either)',
    )
  }
  return value as AccessExpectations
}

export const testPoliciesCommand: Command = {
  name: 'test-policies',
  summary: 'check every caller and operation against an expectation table (exit 1 on a mismatch)',
  usage: `keyhole test-policies --policies MODULE --expect FILE [--migrations DIR]
              [--schema NAME]... [--group-id-type uuid]

Creates a scratch database on the server KEYHOLE_ADMIN_URL (or --database-url) names (a test
server: the role must create a database and two roles), sets it up, applies DIR's migrations and
MODULE's policies, runs every operation of every caller through both layers, compares it with
FILE's table, prints the matrix of any mismatch (exit 1) or one line (exit 0), and drops it all.
Without KEYHOLE_ADMIN_URL it starts a PostgreSQL from the application's embedded-postgres.
FILE: JSON, or a module exporting \`expectations\` (or a default export): expectAccess(policies)…,
the plain table → caller → { can, partly } object, or a function returning either.
--schema: the application's schemas, created by setup (default public); repeat it for each.
${policiesModuleHelp}`,
  async run(args, io) {
    const flags = parse(args, {
      'database-url': { type: 'string' },
      policies: { type: 'string' },
      expect: { type: 'string' },
      migrations: { type: 'string' },
      schema: { type: 'string', multiple: true },
      'group-id-type': { type: 'string' },
    })
    if (flags.help) return (io.out(this.usage), 0)
    const policiesModule = required(flags.policies, '--policies')
    const expectFile = required(flags.expect, '--expect')
    const type = groupIdType(flags['group-id-type'])
    const migrations = flags.migrations
    if (migrations !== undefined) {
      await readdir(migrations).catch(() => {
        throw new UsageError(`--migrations ${migrations}: no such directory`)
      })
    }
    const given = flags['database-url'] ?? io.env.KEYHOLE_ADMIN_URL
    const url = given ? databaseUrl(flags['database-url'], io.env, 'KEYHOLE_ADMIN_URL') : undefined
    const embedded = url === undefined ? resolveEmbeddedPostgres(policiesModule) : undefined
    const policies = await loadPolicies(policiesModule)
    const expect = await loadExpectations(expectFile)
    const server = await testServer(url, embedded)
    let report: AccessReport
    try {
      report = await checkAccess({
        policies,
        databaseUrl: server.url,
        migrations,
        schemas: flags.schema,
        capability: { groupIdType: type },
        expect,
      })
    } catch (error) {
      if (!(error instanceof PolicyMismatch)) throw error
      io.out(error.report.matrix)
      io.out(
        `keyhole test-policies: ${error.report.failures.length} of ${error.report.cells.length} cell(s) failed`,
      )
      return 1
    } finally {
      await server.stop()
    }
    const tables = new Set(report.cells.map((c) => c.table)).size
    io.out(
      `keyhole test-policies: all ${report.cells.length} cell(s) match, both layers (${tables} table(s))`,
    )
    return 0
  },
}
