/**
 * `createPolicyTest`: a scratch database with the application's schema and policies, fixture rows
 * generated from the policies, the callers, and `check` that runs every operation of every caller
 * through both layers and compares it with the expectation table.
 */
import { AssertionError } from 'node:assert'
import { resolveCapabilityOptions, type CapabilityOptions } from '../capability/derive.ts'
import type { GroupIdType } from '../capability/capability.ts'
import { quoteTable } from '../sql/identifier.ts'
import type { Policies } from '../sql/policies.ts'
import { buildCallers, type CallerSpec } from './callers.ts'
import {
  AccessExpectationBuilder,
  expectedCells,
  type AccessExpectations,
} from './expect-access.ts'
import {
  FixtureGenerator,
  type GroupName,
  type RowOverride,
  type TableFixtures,
} from './fixtures.ts'
import { observe, type Observation } from './probe.ts'
import { compare, report, type AccessReport } from './report.ts'
import {
  createScratchDatabase,
  type AdminClient,
  type AdminResult,
  type Migrations,
} from './scratch-database.ts'

export interface PolicyTestOptions {
  /** The application's policies (from `definePolicies`). */
  readonly policies: Policies
  /**
   * A server where the test may create a database and two roles (the test PostgreSQL's superuser,
   * or a role with CREATEDB and CREATEROLE). Never a production server.
   */
  readonly databaseUrl: string
  /** The application's migrations: a postgrator folder, or a function run as the migration role. */
  readonly migrations?: Migrations | undefined
  /** The application's schemas, created by setup. @default ['public'] */
  readonly schemas?: readonly string[] | undefined
  /** The scratch database's name (at most 40 characters); its roles are `<name>_migrator` and `<name>_runtime`. @default `keyhole_test_<random>` */
  readonly database?: string | undefined
  /** The capability options of the application (roles, admin role, group-ID type). */
  readonly capability?: Pick<CapabilityOptions, 'roles' | 'adminRole' | 'groupIdType'> | undefined
  /** The IDs of groups A and B. @default two IDs of the group-ID type */
  readonly groups?: Readonly<Record<GroupName, string>> | undefined
  /**
   * The subjects: of every generated caller (`caller`), of the rows it does not own (`other`), and
   * of the capability with no groups the guard layer runs nobody with (`anonymous`). Give UUIDs
   * when the `isSubject` columns are `uuid`.
   * @default { caller: 'me', other: 'someone-else', anonymous: 'anonymous' }
   */
  readonly subjects?:
    { readonly caller?: string; readonly other?: string; readonly anonymous?: string } | undefined
  /** Callers of your own, by name: `{ 'author': { permissions: [{ group: 'A', role: 'member' }] } }`. */
  readonly callers?: Readonly<Record<string, CallerSpec>> | undefined
  /** Column values per table (its name in the policies, or any table a fixture refers to). */
  readonly rows?: Readonly<Record<string, RowOverride>> | undefined
  /** Rows of your own, inserted as the administrator before the fixtures are generated. */
  readonly seed?:
    | ((client: AdminClient, groups: Readonly<Record<GroupName, string>>) => Promise<void>)
    | undefined
}

export interface CheckOptions {
  /** Check only these tables (each test of a file about one table). @default every table */
  readonly tables?: readonly string[] | undefined
}

/** The expectation table in either form. */
export type Expectations = AccessExpectations | AccessExpectationBuilder

/** A failed check: an AssertionError whose message is the matrix, the report attached. */
export class PolicyMismatch extends AssertionError {
  readonly report: AccessReport

  constructor(result: AccessReport) {
    const name = (c: AccessReport['failures'][number]) =>
      `${c.table} · ${c.caller} · ${c.operation}`
    super({
      message: result.matrix,
      expected: Object.fromEntries(result.failures.map((c) => [name(c), c.expected])),
      actual: Object.fromEntries(
        result.failures.map((c) => [name(c), { guard: c.guard.outcome, rls: c.rls.outcome }]),
      ),
      operator: 'checkAccess',
    })
    this.name = 'PolicyMismatch'
    this.report = result
  }
}

export interface PolicyTest {
  /** The callers' names, in the matrix's order. */
  readonly callers: readonly string[]
  /** The IDs of groups A and B. */
  readonly groups: Readonly<Record<GroupName, string>>
  /** The generated rows, per policy table. */
  readonly fixtures: readonly TableFixtures[]
  /** The scratch database's name. */
  readonly database: string
  /** The runtime role the policies apply to (for SQL you run with `query`). */
  readonly runtimeRole: string
  /** Runs every probe (once; again after `query`) and returns what each layer did. */
  observe(): Promise<readonly Observation[]>
  /**
   * Compares what the layers do with `expectations`; unlabelled cells expect none.
   * @returns the report when every cell passed
   * @throws PolicyMismatch (an AssertionError) with the matrix otherwise
   */
  check(expectations: Expectations, options?: CheckOptions): Promise<AccessReport>
  /** Runs SQL as the administrator of the scratch database (to arrange, or to break on purpose). */
  query<R = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<AdminResult<R>>
  /** Drops the scratch database and its roles. */
  close(): Promise<void>
}

const DEFAULT_GROUPS: Readonly<Record<GroupIdType, Readonly<Record<GroupName, string>>>> = {
  uuid: { A: '00000000-0000-4000-8000-00000000000a', B: '00000000-0000-4000-8000-00000000000b' },
  bigint: { A: '1001', B: '1002' },
  integer: { A: '1001', B: '1002' },
  text: { A: 'group-a', B: 'group-b' },
}

/**
 * Creates the scratch database, migrates it, generates the fixtures and the callers.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for bad options, a table without a primary key,
 * or a fixture row it cannot generate (the message names the column to give in `rows`).
 * @example
 * const test = await createPolicyTest({ policies, databaseUrl, migrations: './migrations' })
 * try {
 *   await test.check(expectAccess(policies).table('posts').as('admin').can('any'))
 * } finally {
 *   await test.close()
 * }
 */
export async function createPolicyTest(options: PolicyTestOptions): Promise<PolicyTest> {
  const capability = resolveCapabilityOptions(options.capability ?? {})
  const groups = Object.freeze({ ...(options.groups ?? DEFAULT_GROUPS[capability.groupIdType]) })
  const subjects = {
    caller: options.subjects?.caller ?? 'me',
    other: options.subjects?.other ?? 'someone-else',
    anonymous: options.subjects?.anonymous ?? 'anonymous',
  }
  const callers = buildCallers(
    capability,
    groups,
    subjects.caller,
    subjects.anonymous,
    options.callers ?? {},
  )
  const policies = options.policies
  const scratch = await createScratchDatabase({
    databaseUrl: options.databaseUrl,
    database: options.database,
    schemas: options.schemas,
    migrations: options.migrations,
    policies,
    groupIdType: capability.groupIdType,
  })
  try {
    await options.seed?.(scratch.admin, groups)
    const generator = new FixtureGenerator(scratch.admin, {
      groupIds: groups,
      subjects,
      rows: options.rows ?? {},
    })
    const fixtures = await generator.generate(policies, (t) => quoteTable(t).sql)
    let observed: Promise<Observation[]> | undefined
    const targets = { ...scratch, policies }
    const run = () => (observed ??= observe(targets, fixtures, callers))
    return Object.freeze({
      callers: Object.freeze(callers.map((c) => c.name)),
      groups,
      fixtures: Object.freeze(fixtures),
      database: scratch.name,
      runtimeRole: scratch.runtimeRole,
      observe: run,
      async check(expectations: Expectations, checkOptions: CheckOptions = {}) {
        const plain =
          expectations instanceof AccessExpectationBuilder ? expectations.toJSON() : expectations
        const names = fixtures.map((f) => f.name)
        const expected = expectedCells(
          plain,
          names,
          callers.map((c) => c.name),
        )
        const tables = checkOptions.tables ?? names
        expectedCells(Object.fromEntries(tables.map((t) => [t, {}])), names, [])
        const cells = compare(
          (await run()).filter((o) => tables.includes(o.table)),
          expected,
        )
        const result = report(cells)
        if (!result.ok) throw new PolicyMismatch(result)
        return result
      },
      async query<R>(text: string, values?: readonly unknown[]) {
        observed = undefined
        return scratch.admin.query<R>(text, values)
      },
      close: () => scratch.close(),
    })
  } catch (error) {
    await scratch.close()
    throw error
  }
}

/**
 * The whole test in one call: creates the scratch database, checks `expect`, drops it.
 * @throws PolicyMismatch (an AssertionError) with the matrix when a cell fails
 * @example
 * await checkAccess({ policies, databaseUrl, migrations: './migrations', expect: expected })
 */
export async function checkAccess(
  options: PolicyTestOptions & { readonly expect: Expectations },
): Promise<AccessReport> {
  const test = await createPolicyTest(options)
  try {
    return await test.check(options.expect)
  } finally {
    await test.close()
  }
}
