/**
 * The stable codes of the database findings, grouped as SECURITY-CASES.md's start-up checks. The
 * table of findings in docs/errors.md lists the same codes.
 */
export const databaseFindingCodes = [
  // 1. role attributes
  'KH_DB_SUPERUSER',
  'KH_DB_BYPASSRLS',
  'KH_DB_CREATEROLE',
  'KH_DB_CREATEDB',
  'KH_DB_REPLICATION',
  // 2. memberships
  'KH_DB_POWERFUL_MEMBERSHIP',
  'KH_DB_MEMBER_OF_OWNER',
  // 3. guarded tables
  'KH_DB_GUARDED_TABLE_MISSING',
  'KH_DB_OWNS_GUARDED_TABLE',
  'KH_DB_RLS_DISABLED',
  'KH_DB_RLS_NOT_FORCED',
  'KH_DB_GUARD_MODE_UNDER_RLS',
  // 4. table privileges
  'KH_DB_TABLE_PRIVILEGE',
  'KH_DB_GRANT_OPTION',
  // 4b. hidden columns
  'KH_DB_COLUMN_PRIVILEGE',
  'KH_DB_COLUMN_NOT_GRANTED',
  // 5. CREATE
  'KH_DB_SCHEMA_CREATE',
  'KH_DB_DATABASE_CREATE',
  'KH_DB_DATABASE_TEMP',
  // 6. policies
  'KH_DB_POLICY_MISSING',
  'KH_DB_POLICY_ALWAYS_TRUE',
  'KH_DB_POLICY_PUBLIC',
  'KH_DB_POLICY_WEAK_CHECK',
  // 6b. policies compared with the application's, when given
  'KH_DB_POLICY_NOT_APPLIED',
  'KH_DB_POLICY_ALTERED',
  'KH_DB_POLICY_UNEXPECTED',
  // 7. views and statistics
  'KH_DB_VIEW_OWNER_RIGHTS',
  'KH_DB_STATEMENT_STATS_READABLE',
  // 8. functions
  'KH_DB_SECURITY_DEFINER',
  'KH_DB_KEYHOLE_FUNCTION_ALTERED',
  // 8c. the sealed capability's parameter
  'KH_DB_CAPABILITY_PARAMETER_WRITABLE',
  // 8d. the capability store installed at setup matches the privileges
  'KH_DB_CAPABILITY_STORE_MISMATCH',
  // 9. leakproof
  'KH_DB_LEAKPROOF',
  // 10. settings and server
  'KH_DB_SETTING_PRESET',
  'KH_DB_ROW_SECURITY_OFF',
  'KH_DB_ROLE_SETTING',
  'KH_DB_SERVER_VERSION',
  // 11. tables outside the guard
  'KH_DB_UNGUARDED_TABLE',
  'KH_DB_CHILD_TABLE',
  // 12. signing key and roles
  'KH_DB_SIGNING_KEY_MISSING',
  'KH_DB_SIGNING_KEY_READABLE',
  'KH_DB_RUNTIME_IS_MIGRATION_ROLE',
  // 12b. the database accepts what the server signs
  'KH_DB_SIGNING_KEY_MISMATCH',
  // 13. transport
  'KH_DB_NOT_ENCRYPTED',
  // a new connection as the runtime role failed (start-up and every monitor run)
  'KH_DB_CONNECT_FAILED',
  // the monitor: the checks themselves could not run (fail closed)
  'KH_DB_CHECK_FAILED',
] as const

export type DatabaseFindingCode = (typeof databaseFindingCodes)[number]
