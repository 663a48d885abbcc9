/**
 * `keyhole/testing`: test your own access policies. A scratch database with your schema and
 * policies, fixture rows generated from the guards, every kind of caller, every operation through
 * both layers (keyhole's guarded statements and the forced RLS policies), compared with a table of
 * what you expect. Works in any test runner: `check` throws an AssertionError with the matrix.
 */
export { createPolicyTest, checkAccess, PolicyMismatch } from './policy-test.ts'
export type { PolicyTest, PolicyTestOptions, CheckOptions, Expectations } from './policy-test.ts'
export { expectAccess, AccessExpectationBuilder } from './expect-access.ts'
export type { AccessExpectations, CallerExpectation, OperationLabel } from './expect-access.ts'
export type {
  Access,
  AccessOperation,
  LayerOutcome,
  LayerResult,
  Observation,
  ProbeStatement,
} from './probe.ts'
export type { AccessCell, AccessReport } from './report.ts'
export type { CallerSpec, CallerPermission } from './callers.ts'
export type { GroupName, RowContext, RowOverride, TableFixtures, FixtureRow } from './fixtures.ts'
export type { TableInfo, ColumnInfo, ForeignKey } from './catalogue.ts'
export type { AdminClient, AdminResult, Migrations } from './scratch-database.ts'
