/**
 * What `migrate`'s policies step corrects: the start-up findings of the guarded tables that the
 * policy SQL (row-level security enabled and forced, every keyhole policy dropped and created
 * again with its record) makes go away. Read on the migration connection just before that step,
 * from the catalogs, for the tables that existed before the application's migrations ran: a table
 * those migrations created (or created again) is new, not drift.
 */
import type { Policies } from '../sql/policies.ts'
import { quoteTable } from '../sql/identifier.ts'
import type { GroupIdType } from '../capability/capability.ts'
import type { CheckQueryable } from './checks/context.ts'
import type { DatabaseFindingCode } from './checks/codes.ts'
import {
  expectedPolicies,
  parseRecord,
  POLICY_DEFINITION_SQL,
  type ExpectedPolicy,
} from './checks/policy-record.ts'
import type { SetupRepair } from './setup-repairs.ts'

/** One repair `migrate` made: the start-up finding it corrects and what changed (as setup's). */
export type MigrateRepair = SetupRepair

/** A guarded table as the policies declare it and as its policy SQL quotes it. */
interface GuardedTable {
  readonly name: string
  readonly sql: string
}

function guardedTables(policies: Policies): GuardedTable[] {
  return Object.keys(policies.tables).map((name) => ({ name, sql: quoteTable(name).sql }))
}

/**
 * The oids of the guarded tables that exist now (undefined for one that does not).
 *
 * ```sql
 * SELECT c.oid FROM unnest($1::text[]) WITH ORDINALITY AS e(tab, n)
 * LEFT JOIN pg_class c ON c.oid = to_regclass(e.tab) ORDER BY e.n
 * ```
 */
export async function guardedTableOids(
  db: CheckQueryable,
  policies: Policies,
): Promise<(number | undefined)[]> {
  const { rows } = await db.query(
    `SELECT c.oid FROM unnest($1::text[]) WITH ORDINALITY AS e(tab, n)
     LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(e.tab) ORDER BY e.n`,
    [guardedTables(policies).map((t) => t.sql)],
  )
  return (rows as { oid: number | null }[]).map((r) => r.oid ?? undefined)
}

interface TableRow {
  oid: number
  rowsecurity: boolean
  forcerowsecurity: boolean
}

interface PolicyRow {
  table_oid: number
  name: string
  permissive: boolean
  definition: string
  record: string | null
}

/** How an installed policy differs from the one the policies generate (as check 6b says). */
function policyDrift(
  expected: ExpectedPolicy,
  row: PolicyRow | undefined,
): [DatabaseFindingCode, string] | undefined {
  if (row === undefined) return ['KH_DB_POLICY_NOT_APPLIED', 'was not installed']
  const record = parseRecord(row.record)
  if (record === undefined) {
    return ['KH_DB_POLICY_NOT_APPLIED', "had no keyhole record (made by other SQL than keyhole's)"]
  }
  if (record.statement !== expected.statementSha256) {
    return [
      'KH_DB_POLICY_NOT_APPLIED',
      'was applied from another statement than the policies generate now',
    ]
  }
  if (record.definition !== row.definition) {
    return ['KH_DB_POLICY_ALTERED', 'was changed after keyhole applied it']
  }
  return undefined
}

/**
 * The repairs the policy SQL for `policies` is about to make, on the tables whose oid is in
 * `before` (see {@link guardedTableOids}), in the order of the policies' tables.
 *
 * ```sql
 * SELECT oid, relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = ANY($1::oid[])
 * SELECT p.polrelid, p.polname, p.polpermissive, <the definition digest>, obj_description(p.oid, 'pg_policy')
 * FROM pg_policy p WHERE p.polrelid = ANY($1::oid[]) AND p.polname IN ('keyhole_select', …)
 * ```
 */
export async function policyRepairs(
  db: CheckQueryable,
  policies: Policies,
  options: { readonly runtimeRole: string; readonly groupIdType: GroupIdType },
  before: readonly (number | undefined)[],
): Promise<MigrateRepair[]> {
  const now = await guardedTableOids(db, policies)
  const tables = guardedTables(policies).flatMap((table, i) =>
    before[i] !== undefined && before[i] === now[i] ? [{ ...table, oid: before[i] }] : [],
  )
  if (tables.length === 0) return []
  const oids = tables.map((t) => t.oid)
  const flags = (
    await db.query(
      `SELECT oid, relrowsecurity AS rowsecurity, relforcerowsecurity AS forcerowsecurity
       FROM pg_catalog.pg_class WHERE oid = ANY($1::oid[])`,
      [oids],
    )
  ).rows as TableRow[]
  const installed = (
    await db.query(
      `SELECT p.polrelid AS table_oid, p.polname AS name, p.polpermissive AS permissive,
         ${POLICY_DEFINITION_SQL} AS definition,
         pg_catalog.obj_description(p.oid, 'pg_policy') AS record
       FROM pg_catalog.pg_policy p
       WHERE p.polrelid = ANY($1::oid[])
         AND p.polname IN ('keyhole_select', 'keyhole_insert', 'keyhole_update', 'keyhole_delete')`,
      [oids],
    )
  ).rows as PolicyRow[]
  const expected = expectedPolicies(policies, {
    role: options.runtimeRole,
    groupIdType: options.groupIdType,
  })
  const repairs: MigrateRepair[] = []
  for (const table of tables) {
    const flag = flags.find((f) => f.oid === table.oid)!
    if (!flag.rowsecurity) {
      repairs.push({
        code: 'KH_DB_RLS_DISABLED',
        message: `row-level security was disabled on ${table.name}: enabled`,
      })
    }
    if (!flag.forcerowsecurity) {
      repairs.push({
        code: 'KH_DB_RLS_NOT_FORCED',
        message: `row-level security was not forced on ${table.name}: forced`,
      })
    }
    const own = installed.filter((p) => p.table_oid === table.oid)
    for (const p of expected.filter((e) => e.table === table.sql)) {
      const drift = policyDrift(
        p,
        own.find((r) => r.name === p.name),
      )
      if (drift === undefined) continue
      repairs.push({
        code: drift[0],
        message: `the policy ${p.name} on ${table.name} ${drift[1]}: applied`,
      })
    }
    for (const p of own) {
      if (!p.permissive || expected.some((e) => e.table === table.sql && e.name === p.name)) {
        continue
      }
      repairs.push({
        code: 'KH_DB_POLICY_UNEXPECTED',
        message: `the permissive policy ${p.name} on ${table.name}, which the policies do not define: dropped`,
      })
    }
  }
  return repairs
}
