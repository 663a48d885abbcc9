/**
 * keyhole's framework-free core. The adapters are separate entry points, `keyhole/fastify` and
 * `keyhole/express`, so an Express user never loads Fastify.
 */

// Errors
export {
  KeyholeError,
  TokenError,
  Forbidden,
  InsufficientScope,
  CapabilityDenied,
  ColumnDenied,
  NotFound,
  Conflict,
  BadRequest,
  ServiceUnavailable,
  SessionDirty,
  DatabaseFault,
  DecryptionFailed,
  ConfigurationError,
  InsecureDatabase,
  isKeyholeError,
  errorCatalogue,
} from './errors.ts'
export type {
  KeyholeErrorCode,
  KeyholeErrorOptions,
  BearerErrorCode,
  GuardedOperation,
  DatabaseFinding,
} from './errors.ts'

// Events on node:diagnostics_channel (docs/events.md)
export { channelNames, decisionChannel, findingChannel, systemChannel } from './events.ts'
export type { DecisionEvent, FindingEvent, FindingSource } from './events.ts'
export type { KeyholeMetrics, StatementKind } from './metrics.ts'

// Token → capability
export { createAuthenticator } from './token/authenticate.ts'
export type { Authenticator, AuthenticationResult, TokenSource } from './token/authenticate.ts'
export { keyholeOptionsShape, keyholeOptionsSchema, supportedAlgorithms } from './options.ts'
export type {
  KeyholeOptions,
  Algorithm,
  GetKey,
  JwksOptions,
  CacheOptions,
  VerificationKey,
} from './options.ts'
export {
  deriveCapability,
  resolveCapabilityOptions,
  capabilityOptionsSchema,
} from './capability/derive.ts'
export type { CapabilityOptions, ResolvedCapabilityOptions } from './capability/derive.ts'
export { assertRole, checkRole, assertRoleKnown } from './capability/assert-role.ts'
export { defineCapability } from './capability/define-capability.ts'
export type { CapabilitySpec } from './capability/define-capability.ts'
export { assertScopes } from './capability/assert-scope.ts'
export type { Capability, GroupIdType, RoleBinding } from './capability/capability.ts'

// Guards and guarded statements
export { inGroup, viaParent, isSubject, and, or, adminOnly, isGuard } from './sql/guard.ts'
export type { Guard, ParentLink } from './sql/guard.ts'
export { guardedInsert } from './sql/guarded-insert.ts'
export type { GuardedInsertOptions, InsertResult } from './sql/guarded-insert.ts'
export { guardedSelect } from './sql/guarded-select.ts'
export type { GuardedSelectOptions, OrderBy, SortDirection } from './sql/guarded-select.ts'
export { guardedUpdate } from './sql/guarded-update.ts'
export type { GuardedUpdateOptions } from './sql/guarded-update.ts'
export { guardedDelete } from './sql/guarded-delete.ts'
export type { GuardedDeleteOptions } from './sql/guarded-delete.ts'
export type { WriteResult } from './sql/write-outcome.ts'
export { definePolicies, bindPolicies } from './sql/policies.ts'
export type {
  Policies,
  TablePolicy,
  PolicyOperation,
  PolicyHandle,
  BindOptions,
} from './sql/policies.ts'
export { sql, isSql } from './sql/sql-tag.ts'
export type { Sql, GuardFragmentOptions } from './sql/sql-tag.ts'
export type {
  RawQueryConfig,
  RawQueryResult,
  RawSqlMethods,
  GuardFragmentOperation,
} from './sql/raw-query.ts'
export type { ColumnRules, ColumnList } from './sql/column-rules.ts'
export { renderPolicySql } from './sql/render-policy-sql.ts'
export type { RenderPolicyOptions } from './sql/render-policy-sql.ts'
export { mapDatabaseError } from './sql/map-database-error.ts'
export { quoteIdentifier, quoteTable } from './sql/identifier.ts'
export type { Queryable, QueryConfig, Row, StatementOptions } from './sql/queryable.ts'
export type { Where, WhereValue } from './sql/where.ts'
export type { Returning } from './sql/run-statement.ts'
export { op, likeContains, likePrefix, escapeLike, isFilter } from './sql/filter.ts'
export type { Filter, ColumnOperators } from './sql/filter.ts'
export { guardedCount } from './sql/guarded-count.ts'
export type { GuardedCountOptions } from './sql/guarded-count.ts'
export type {
  HandleOf,
  PolicyDefinitions,
  Register,
  RequestDatabase,
  TypedPolicyHandle,
} from './sql/policies.ts'
export type {
  ColumnName,
  Cursor,
  InsertOf,
  RowOf,
  TableName,
  TypedWhere,
  UpdateOf,
} from './sql/table-types.ts'

// PostgreSQL: roles, migrations, the signed session, checks and the monitor
export { setup } from './db/setup.ts'
export type { SetupOptions, SetupResult, SetupRepair, RoleCredentials } from './db/setup.ts'
export type { CapabilityStore } from './db/setup.ts'
export { migrate } from './db/migrate.ts'
export type { MigrateOptions, MigrateResult, MigrateRepair } from './db/migrate.ts'
export {
  policySql,
  renderRecordedPolicySql,
  writePolicyMigration,
  applyPolicies,
} from './db/policy-sql.ts'
export type { PolicySqlOptions } from './db/policy-sql.ts'
export { KEYHOLE_FUNCTIONS } from './db/keyhole-sql.ts'
export { createSessionFactory } from './db/session.ts'
export type {
  SessionFactory,
  SessionFactoryOptions,
  SessionPool,
  SessionClient,
  SessionQuery,
  SessionQueryable,
  SessionResult,
} from './db/session.ts'
export { createKeyhole } from './db/create-keyhole.ts'
export type { Keyhole, CreateKeyholeOptions } from './db/create-keyhole.ts'
export type {
  RunAsSystem,
  SystemContextEvent,
  SystemDeclaration,
  SystemLogger,
  SystemOptions,
  SystemStatement,
} from './db/system-context.ts'
export type { DatabaseOptions, DatabasePool } from './db/database-options.ts'
export { createCapabilitySigner } from './db/sign-capability.ts'
export type { CapabilitySigner } from './db/sign-capability.ts'
export { generateSigningKey } from './db/signing-key.ts'
export { checkDatabase, assertDatabaseSecure, databaseFindingCodes } from './db/check-database.ts'
export { capabilityStore } from './db/check-database.ts'
export type {
  CheckDatabaseOptions,
  CheckQueryable,
  GuardedTable,
  KeyholeFunctionExpectation,
  HiddenColumnsOption,
  DatabaseFindingCode,
} from './db/check-database.ts'
export { startMonitor } from './db/monitor.ts'
export type { DatabaseMonitor, MonitorOptions, MonitorLogger } from './db/monitor.ts'

// Encrypted columns (docs/columns.md)
export { dataKeys, dataKeysFromEnv, unwrapDataKeys } from './encryption/data-keys.ts'
export type { DataKeys, DataKeysOptions, UnwrapDataKeysOptions } from './encryption/data-keys.ts'
export { reencrypt } from './encryption/reencrypt.ts'
export type { ReencryptHandle, ReencryptOptions, ReencryptResult } from './encryption/reencrypt.ts'
export type {
  BlindIndexedColumn,
  EncryptedColumnDeclaration,
  EncryptedDeclaration,
} from './encryption/encrypted-columns.ts'
