/**
 * The options of {@link checkDatabase}: which tables keyhole guards and what it does to them, and
 * what keyhole's own objects are expected to look like. Validated once with zod and frozen.
 */
import { z } from 'zod'
import type { GroupIdType } from '../../capability/capability.ts'
import { ConfigurationError, type GuardedOperation } from '../../errors.ts'
import type { Policies } from '../../sql/policies.ts'
import { hiddenColumnsOf } from '../../sql/render-column-grants.ts'
import { parseSigningKey } from '../signing-key.ts'

/** A guarded table and the operations keyhole performs on it (each needs a policy). */
export interface GuardedTable {
  /** Schema-qualified, as in SQL: `public.posts`, `app."Posts"`. */
  readonly table: string
  readonly operations: readonly GuardedOperation[]
}

/** One of keyhole's own SECURITY DEFINER functions, as installed by `keyhole setup`. */
export interface KeyholeFunctionExpectation {
  /** `schema.name(argument types)`, as `to_regprocedure` reads it: `keyhole.group_ids(text)`. */
  readonly signature: string
  /** The SHA-256 (hex) of the function's body (`pg_proc.prosrc`) as installed; unchecked if absent. */
  readonly sourceSha256?: string | undefined
}

/** A table's hidden columns, for the start-up checks. */
export interface HiddenColumnsOption {
  /** Schema-qualified, as in SQL: `public.users`. */
  readonly table: string
  readonly columns: readonly string[]
}

export interface CheckDatabaseOptions {
  /** Every table keyhole guards, with the operations it performs on each. */
  readonly guardedTables: readonly GuardedTable[]
  /**
   * The role that owns the schema and runs migrations. When set, the runtime role must not be it
   * or a member of it, and keyhole's functions must be owned by it.
   */
  readonly migrationRole?: string | undefined
  /**
   * The schemas whose tables the runtime role must not reach without row-level security.
   * @default the schemas of the runtime role's search_path
   */
  readonly applicationSchemas?: readonly string[] | undefined
  /** Tables (schema-qualified) the runtime role may read or write without RLS, on purpose. */
  readonly unguardedTables?: readonly string[] | undefined
  /** @default 'keyhole.capability' */
  readonly capabilitySetting?: string | undefined
  /**
   * keyhole's own SECURITY DEFINER functions: the only ones the runtime role may execute.
   * @default keyhole.set_capability(text), keyhole.group_ids(text), keyhole.is_admin(),
   * keyhole.subject(), keyhole.set_system(text), keyhole.system_allows(text,text),
   * keyhole.sets_unique_key(regclass,name[])
   */
  readonly keyholeFunctions?: readonly (string | KeyholeFunctionExpectation)[] | undefined
  /** The table holding the capability-signing key, or `false` to skip. @default 'keyhole.signing_key' */
  readonly signingKeyTable?: string | false | undefined
  /** `server_version_num` below which keyhole refuses. @default 140000 (PostgreSQL 14) */
  readonly minimumServerVersion?: number | undefined
  /**
   * The application's policies (`definePolicies`). When given, every policy keyhole generates
   * from them for the runtime role must be installed exactly as generated and recorded by the
   * migration (KH_DB_POLICY_NOT_APPLIED, KH_DB_POLICY_ALTERED), and no other permissive policy
   * may apply to the runtime role on their tables (KH_DB_POLICY_UNEXPECTED). Without them, the
   * policies are judged by a conservative reading of their text only.
   */
  readonly policies?: Policies | undefined
  /** The group-ID type the policies were generated with. @default 'uuid' */
  readonly groupIdType?: GroupIdType | undefined
  /**
   * Columns no runtime caller may read or write, per table (schema-qualified, as `guardedTables`):
   * the runtime role must hold no privilege on them (KH_DB_COLUMN_PRIVILEGE), and every other
   * column of a table the runtime role holds column grants on must be granted
   * (KH_DB_COLUMN_NOT_GRANTED).
   * @default the `columns.hidden` of `policies` (an unqualified table as `public.<table>`), or none
   */
  readonly hiddenColumns?: readonly HiddenColumnsOption[] | undefined
  /**
   * Role and database defaults (`ALTER ROLE … SET`, `ALTER DATABASE … SET`) allowed for the
   * runtime role, each with its exact value as `pg_db_role_setting` stores it (`{
   * statement_timeout: '30s' }`). Any other default that applies to the runtime role's logins in
   * this database is KH_DB_ROLE_SETTING: the runtime role can set its own defaults (`ALTER ROLE
   * CURRENT_USER SET default_transaction_read_only = on`), they survive `RESET ALL`, and a
   * `statement_timeout` of 1 ms or a read-only default takes the application down. The capability
   * setting and `row_security` cannot be allowed (their own findings cover them).
   * @default {} (no default allowed)
   */
  readonly allowedSettings?: Readonly<Record<string, string>> | undefined
  /**
   * How the application runs its statements. `'rls'`: each transaction first sets the signed
   * capability, and the guarded tables' forced row-level security re-checks every row. `'guard'`:
   * the statement's own guard is the only line and no capability is ever set, so row-level
   * security on a guarded table refuses every row (KH_DB_GUARD_MODE_UNDER_RLS); the checks then
   * do not ask for row-level security or policies on the guarded tables.
   * @default 'rls'
   */
  readonly mode?: 'rls' | 'guard' | undefined
  /**
   * Whether the runtime connection must be encrypted (KH_DB_NOT_ENCRYPTED). `'remote'`: unless
   * it stays on the machine (a Unix socket, or loopback: 127.0.0.0/8, ::1). `'always'`: on
   * loopback too. `'waived'`: never; the adapters log the waiver at warn level at start-up, so
   * it is never silent. Waive it only where the network is encrypted otherwise (a VPN, a sidecar
   * that terminates TLS). Production connects with `sslmode=verify-full` and the server's CA.
   * @default 'remote'
   */
  readonly tls?: 'remote' | 'always' | 'waived' | undefined
  /**
   * The server's capability-signing key (the adapter passes `database.signingKey`). When given in
   * 'rls' mode, the checks sign a capability that grants nothing with it and ask the database to
   * accept it (`keyhole.set_capability`, in a transaction rolled back at once): a key other than
   * the one `keyhole setup` installed is KH_DB_SIGNING_KEY_MISMATCH. Kept in no enumerable property.
   */
  readonly signingKey?: Uint8Array | string | undefined
}

export interface ResolvedCheckOptions {
  readonly guardedTables: readonly GuardedTable[]
  readonly migrationRole: string | undefined
  readonly applicationSchemas: readonly string[] | undefined
  readonly unguardedTables: readonly string[]
  readonly capabilitySetting: string
  readonly keyholeFunctions: readonly KeyholeFunctionExpectation[]
  readonly signingKeyTable: string | false
  readonly minimumServerVersion: number
  readonly policies: Policies | undefined
  readonly groupIdType: GroupIdType
  readonly hiddenColumns: readonly HiddenColumnsOption[]
  /** Lower-case setting name → the exact value allowed (a frozen object without prototype). */
  readonly allowedSettings: Readonly<Record<string, string>>
  readonly mode: 'rls' | 'guard'
  readonly tls: 'remote' | 'always' | 'waived'
  /** Not enumerable: a secret. */
  readonly signingKey: Uint8Array | string | undefined
}

export const defaultKeyholeFunctions: readonly KeyholeFunctionExpectation[] = Object.freeze([
  Object.freeze({ signature: 'keyhole.set_capability(text)' }),
  Object.freeze({ signature: 'keyhole.group_ids(text)' }),
  Object.freeze({ signature: 'keyhole.is_admin()' }),
  Object.freeze({ signature: 'keyhole.subject()' }),
  Object.freeze({ signature: 'keyhole.set_system(text)' }),
  Object.freeze({ signature: 'keyhole.system_allows(text,text)' }),
  Object.freeze({ signature: 'keyhole.sets_unique_key(regclass,name[])' }),
])

// A plain or double-quoted SQL identifier; qualified names have exactly two of them.
const part = String.raw`(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"\u0000]|"")+")`
const qualifiedName = z
  .string()
  .regex(new RegExp(`^${part}\\.${part}$`), 'must be a schema-qualified name such as public.posts')
const signature = z
  .string()
  .regex(
    new RegExp(String.raw`^${part}\.${part}\([A-Za-z0-9_ ,."\[\]]*\)$`),
    'must be a signature such as keyhole.group_ids(text)',
  )

const optionsSchema = z.strictObject({
  guardedTables: z.array(
    z.strictObject({
      table: qualifiedName,
      operations: z.array(z.enum(['select', 'insert', 'update', 'delete'])).min(1),
    }),
  ),
  migrationRole: z.string().min(1).optional(),
  applicationSchemas: z.array(z.string().min(1)).optional(),
  unguardedTables: z.array(qualifiedName).optional(),
  capabilitySetting: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_.]*$/, 'must be a custom setting name')
    .optional(),
  keyholeFunctions: z
    .array(
      z.union([
        signature,
        z.strictObject({
          signature,
          sourceSha256: z
            .string()
            .regex(/^[0-9a-f]{64}$/, 'must be a lower-case hex SHA-256')
            .optional(),
        }),
      ]),
    )
    .optional(),
  signingKeyTable: z.union([qualifiedName, z.literal(false)]).optional(),
  minimumServerVersion: z.number().int().min(90000).optional(),
  policies: z
    .custom<Policies>(
      (v) => typeof v === 'object' && v !== null && Object.isFrozen(v) && 'tables' in v,
      'must be the result of definePolicies',
    )
    .optional(),
  groupIdType: z.enum(['uuid', 'bigint', 'integer', 'text']).optional(),
  hiddenColumns: z
    .array(z.strictObject({ table: qualifiedName, columns: z.array(z.string().min(1)).min(1) }))
    .optional(),
  allowedSettings: z
    .record(
      z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/, 'must be setting names'),
      z.string(),
    )
    .optional(),
  mode: z.enum(['rls', 'guard']).optional(),
  tls: z.enum(['remote', 'always', 'waived']).optional(),
  signingKey: z.union([z.string(), z.instanceof(Uint8Array)]).optional(),
})

/** Validates and freezes the options; throws `KH_INVALID_OPTIONS` naming the bad option. */
export function resolveCheckOptions(options: CheckDatabaseOptions): ResolvedCheckOptions {
  const parsed = optionsSchema.safeParse(options)
  if (!parsed.success) {
    // zod reports at least one issue on failure; the first names the option.
    const [issue] = parsed.error.issues as [z.core.$ZodIssue]
    // An unknown key is named by the issue, not by its path.
    const unknown = issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : []
    const path = ['checkDatabase', ...issue.path.map(String), ...unknown].join('.')
    throw new ConfigurationError('KH_INVALID_OPTIONS', `Invalid option ${path}: ${issue.message}`)
  }
  const o = parsed.data
  const capabilitySetting = o.capabilitySetting ?? 'keyhole.capability'
  const allowed: Record<string, string> = Object.create(null)
  for (const [name, value] of Object.entries(o.allowedSettings ?? {})) {
    const lower = name.toLowerCase()
    if (lower === capabilitySetting.toLowerCase() || lower === 'row_security') {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `Invalid option checkDatabase.allowedSettings.${name}: the capability setting and row_security cannot be allowed`,
      )
    }
    allowed[lower] = value
  }
  const functions = (o.keyholeFunctions ?? defaultKeyholeFunctions).map((f) =>
    Object.freeze(typeof f === 'string' ? { signature: f } : f),
  )
  if (o.signingKey !== undefined) parseSigningKey(o.signingKey, 'checkDatabase.signingKey')
  const resolved = {
    guardedTables: Object.freeze(
      o.guardedTables.map((g) =>
        Object.freeze({ table: g.table, operations: Object.freeze([...new Set(g.operations)]) }),
      ),
    ),
    migrationRole: o.migrationRole,
    applicationSchemas: o.applicationSchemas && Object.freeze([...o.applicationSchemas]),
    unguardedTables: Object.freeze([...(o.unguardedTables ?? [])]),
    capabilitySetting,
    keyholeFunctions: Object.freeze(functions),
    signingKeyTable: o.signingKeyTable ?? 'keyhole.signing_key',
    minimumServerVersion: o.minimumServerVersion ?? 140000,
    policies: o.policies,
    groupIdType: o.groupIdType ?? 'uuid',
    hiddenColumns: Object.freeze(
      (o.hiddenColumns ?? (o.policies ? hiddenColumnsOf(o.policies) : [])).map((h) =>
        Object.freeze({
          table: h.table.includes('.') ? h.table : `public.${h.table}`,
          columns: Object.freeze([...h.columns]),
        }),
      ),
    ),
    allowedSettings: Object.freeze(allowed),
    mode: o.mode ?? 'rls',
    tls: o.tls ?? 'remote',
  }
  // A secret never sits in an enumerable property (a logged options object would show it).
  Object.defineProperty(resolved, 'signingKey', { value: o.signingKey, enumerable: false })
  return Object.freeze(resolved as ResolvedCheckOptions)
}
