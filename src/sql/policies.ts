/**
 * Policies, declared once per table: which guard each operation needs. The same declaration drives
 * the request-bound handle ({@link bindPolicies}) and the RLS policies (`renderPolicySql`),
 * so the application's guard and the database's cannot drift apart.
 */
import { uncounted, type StatementKind } from '../metrics.ts'
import type { Capability } from '../capability/capability.ts'
import type { DataKeys } from '../encryption/data-keys.ts'
import { parseEncrypted, type EncryptedDeclaration } from '../encryption/encrypted-columns.ts'
import {
  encryptedStatements,
  registerHandle,
  type EncryptedTables,
} from '../encryption/encrypted-statements.ts'
import { ConfigurationError } from '../errors.ts'
import { columnAccess, parseColumnRules, projected, type ColumnRules } from './column-rules.ts'
import { isGuard, type Guard, type GuardNode } from './guard.ts'
import { describeInput, quoteTable } from './identifier.ts'
import type { InsertResult } from './guarded-insert.ts'
import type { OrderBy } from './guarded-select.ts'
import type { Queryable, Row, StatementOptions } from './queryable.ts'
import { attachRawSql, type RawSqlMethods } from './raw-query.ts'
import type { ColumnName, TableName, TypedCalls } from './table-types.ts'
import type { Returning } from './run-statement.ts'
import type { Where } from './where.ts'
import type { WriteResult } from './write-outcome.ts'

/** The operations a policy can allow. */
export type PolicyOperation = 'read' | 'insert' | 'update' | 'delete'

const OPERATIONS: readonly PolicyOperation[] = ['read', 'insert', 'update', 'delete']

/**
 * One table's guards; an operation left out is refused (deny by default). `system` lists the
 * operations a system context (`runAsSystem`) may perform on the table across groups: none when
 * left out. `columns`: which columns each role may read and write (docs/columns.md); `C` is the
 * table's column names with `definePolicies<DB>`.
 */
export type TablePolicy<C extends string = string> = {
  readonly [operation in PolicyOperation]?: Guard
} & {
  readonly system?: readonly PolicyOperation[]
  readonly columns?: ColumnRules<C>
  /**
   * Columns keyhole encrypts (AES-256-GCM) on write and decrypts on read, with an optional blind
   * index for equality lookups; see docs/columns.md. Needs the data keys (`KEYHOLE_DATA_KEY`).
   */
  readonly encrypted?: EncryptedDeclaration<C>
}

declare const kDatabase: unique symbol

/**
 * Frozen, validated policies from {@link definePolicies}. `DB` is the tables' types given to
 * `definePolicies<DB>` (a Kysely-style `Database` interface); `any` (the default) is untyped.
 */
export interface Policies<DB = any> {
  /** Table name (as declared) → its guards. */
  readonly tables: { readonly [table: string]: TablePolicy }
  /** Every role the guards name. */
  readonly roles: readonly string[]
  /** Phantom (never set): carries `DB` to the handle {@link bindPolicies} returns. */
  readonly [kDatabase]?: DB
}

/** True for `any`: the untyped default of `DB`. */
type IsAny<T> = 0 extends 1 & T ? true : false

/** The `definePolicies` argument: any table names untyped, else only `DB`'s tables. */
export type PolicyDefinitions<DB> =
  IsAny<DB> extends true
    ? { readonly [table: string]: TablePolicy }
    : { readonly [T in TableName<DB>]?: TablePolicy<ColumnName<DB, T>> }

function collectRoles(node: GuardNode, roles: Set<string>): void {
  if (node.kind === 'inGroup') roles.add(node.role)
  else if (node.kind === 'viaParent') collectRoles(node.parent, roles)
  else if (node.kind === 'and' || node.kind === 'or') {
    for (const guard of node.guards) collectRoles(guard, roles)
  }
}

/** A table's `system` list, checked and frozen (each operation once, in keyhole's order). */
function systemOperations(value: unknown, table: string): readonly PolicyOperation[] {
  if (!Array.isArray(value) || !value.every((o) => OPERATIONS.includes(o))) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `The system operations of table ${table} must be a list of read, insert, update and delete`,
    )
  }
  const operations = OPERATIONS.filter((o) => value.includes(o))
  assertSystemReads(operations, `the system operations of table ${table}`)
  return Object.freeze(operations)
}

/**
 * keyhole's UPDATE and DELETE read the rows they change (a WHERE, a RETURNING), and PostgreSQL
 * then applies the table's SELECT policy to them: without `read`, a system update or delete
 * would find no row under RLS.
 * @throws ConfigurationError `KH_INVALID_OPTIONS`
 */
export function assertSystemReads(operations: readonly PolicyOperation[], what: string): void {
  if (!operations.includes('read') && operations.some((o) => o === 'update' || o === 'delete')) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `${what} include update or delete but not read, which they need: PostgreSQL applies the SELECT policy to the rows an UPDATE or DELETE reads`,
    )
  }
}

/**
 * Every operation keyhole may perform on a table under `policy`: its guarded operations and its
 * `system` ones, each once, in keyhole's order (read, insert, update, delete).
 */
export function tableOperations(policy: TablePolicy): PolicyOperation[] {
  return OPERATIONS.filter((o) => policy[o] !== undefined || policy.system?.includes(o))
}

/**
 * Declares the guard of each operation per table. Table names and operations are checked here;
 * roles are checked against the capability's hierarchy when the policies are bound.
 * A table's `system` lists what a system context (`runAsSystem`) may do to it across groups
 * (deny by default); the RLS policies admit a signed system grant for exactly those operations.
 * A table's `columns` says which columns each role may read and write (see column-rules.ts).
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER` for a bad table name, `KH_INVALID_OPTIONS`
 * for an unknown operation, a value that is not a guard, a `system` that is not a list of
 * operations, or a table without any operation.
 * @example
 * const policies = definePolicies({
 *   discussion_threads: {
 *     read: inGroup('group_id', 'member'),
 *     insert: inGroup('group_id', 'member'),
 *     delete: inGroup('group_id', 'moderator'),
 *     system: ['delete'], // a retention job deletes old threads of every group
 *   },
 * })
 */
// One type parameter, given explicitly (`definePolicies<DB>({…})`) or not at all: TypeScript has
// no partial inference, so a second, inferred parameter (the definitions' literal type) would need
// a curried call, `definePolicies<DB>()({…})`. With one parameter nothing else needs inferring:
// the definitions are checked against DB's tables (a misspelt table is an excess-property error),
// and `NoInfer` keeps DB from being inferred from them, which would accept any table name.
export function definePolicies<DB = any>(
  definitions: NoInfer<PolicyDefinitions<DB>>,
): Policies<DB> {
  if (definitions === null || typeof definitions !== 'object') {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'definePolicies needs { table: { read, insert, update, delete } }',
    )
  }
  const tables: Record<string, TablePolicy> = Object.create(null)
  const roles = new Set<string>()
  for (const [table, policy] of Object.entries(definitions as { [table: string]: TablePolicy })) {
    quoteTable(table)
    if (policy === null || typeof policy !== 'object' || Object.keys(policy).length === 0) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `The policy of table ${table} must name at least one operation`,
      )
    }
    const copy: Record<string, unknown> = {}
    for (const [operation, guard] of Object.entries(policy)) {
      if (operation === 'system') {
        copy.system = systemOperations(guard, table)
        continue
      }
      if (operation === 'columns') {
        copy.columns = parseColumnRules(guard, table, roles)
        continue
      }
      if (operation === 'encrypted') {
        copy.encrypted = parseEncrypted(guard, table)
        continue
      }
      if (!OPERATIONS.includes(operation as PolicyOperation)) {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          `Unknown operation ${describeInput(operation)} in the policy of table ${table}: expected read, insert, update or delete`,
        )
      }
      if (!isGuard(guard)) {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          `The ${operation} policy of table ${table} is not a guard`,
        )
      }
      collectRoles(guard.node, roles)
      copy[operation] = guard
    }
    tables[table] = Object.freeze(copy) as TablePolicy
  }
  return Object.freeze({
    tables: Object.freeze(tables),
    roles: Object.freeze([...roles]),
  }) as Policies<DB>
}

/** Options of {@link bindPolicies}. */
export interface BindOptions extends StatementOptions {
  /**
   * How `query` treats your own SQL: `'rls'` when `queryable` sets the signed capability (a
   * `withCapability` session, the request's transaction) and the tables' policies are forced: any
   * statement runs; `'guard'` (anything else): only `sql` that embeds this handle's `guard(…)`.
   * `'rls'` also lets guarded writes call keyhole's schema (`keyhole.sets_unique_key`, sql/000005).
   * @default 'guard'
   */
  readonly mode?: 'guard' | 'rls' | undefined
  /**
   * In 'rls' mode: whether the queryable's statements share one transaction (`'request'`), which
   * keyhole/kysely's transactions need (they are savepoints of it), or each commit alone.
   * @default 'request'
   */
  readonly transaction?: 'request' | 'statement' | undefined
  /** Counts each statement by kind (see `KeyholeMetrics.statements`). */
  readonly counters?: Record<StatementKind, number> | undefined
  /**
   * The keys of the policies' encrypted columns (see `dataKeys`, `dataKeysFromEnv`); required
   * when a table declares `encrypted`, else `KH_DATA_KEY_MISSING`.
   */
  readonly dataKeys?: DataKeys | undefined
}

/**
 * The request-bound handle: every statement guarded by the table's policy and the capability;
 * `query` and `guard` for your own SQL (see raw-query.ts).
 */
export interface PolicyHandle extends RawSqlMethods {
  /** One row → the inserted row; several → which were inserted and which refused. */
  insert<R = Row>(table: string, values: Row, options?: InsertOptions): Promise<R>
  insert<R = Row>(
    table: string,
    values: readonly Row[],
    options?: InsertOptions,
  ): Promise<InsertResult<R>>
  select<R = Row>(table: string, where?: Where, options?: SelectOptions): Promise<R[]>
  /** How many rows match `where` among those the read policy lets the holder see. */
  count(table: string, where?: Where): Promise<number>
  update<R = Row>(
    table: string,
    where: Where,
    set: Row,
    options?: UpdateOptions,
  ): Promise<WriteResult<R>>
  delete<R = Row>(table: string, where: Where, options?: WriteOptions): Promise<WriteResult<R>>
}

/**
 * The handle over typed tables (`definePolicies<DB>`): the calls of {@link PolicyHandle}, with
 * `insert`, `select`, `count`, `update` and `delete` checked against `DB` (see table-types.ts).
 */
export interface TypedPolicyHandle<DB>
  extends Omit<PolicyHandle, 'insert' | 'select' | 'count' | 'update' | 'delete'>, TypedCalls<DB> {}

/** The handle of policies over `DB`: typed, or the untyped {@link PolicyHandle} for `any`. */
export type HandleOf<DB> = IsAny<DB> extends true ? PolicyHandle : TypedPolicyHandle<DB>

/**
 * Register the application's tables once, and `request.db` (both adapters) is typed by them:
 * ```ts
 * declare module 'keyhole' {
 *   interface Register {
 *     database: DB
 *   }
 * }
 * ```
 */
// Empty on purpose: an application adds `database` to it by declaration merging.
export interface Register {}

/** The type of `request.db`: typed by {@link Register}'s `database`, else {@link PolicyHandle}. */
export type RequestDatabase = Register extends { readonly database: infer DB }
  ? TypedPolicyHandle<DB>
  : PolicyHandle

export interface InsertOptions {
  readonly returning?: Returning
  readonly atomic?: boolean
  /** Unique columns the values may set (see guardedInsert): any other is refused with 400. */
  readonly chosenKeys?: readonly string[]
}
export interface SelectOptions {
  readonly columns?: '*' | readonly string[]
  readonly orderBy?: OrderBy
  /** A non-negative integer, else 400 `KH_BAD_REQUEST`. */
  readonly limit?: number
  /** Rows to skip: a non-negative integer, else 400 `KH_BAD_REQUEST`. */
  readonly offset?: number
  /**
   * Keyset pagination: the rows strictly after this cursor in `orderBy`'s order (an object with a
   * value for every order column, e.g. the previous page's last row).
   */
  readonly after?: object
}
export interface WriteOptions {
  readonly returning?: Returning
}
export interface UpdateOptions extends WriteOptions {
  /** Unique columns `set` may change (see guardedUpdate): any other is refused with 400. */
  readonly chosenKeys?: readonly string[]
}

const checkedHierarchies = new WeakMap<Policies, readonly string[]>()

function assertRoles(policies: Policies, capability: Capability): void {
  if (checkedHierarchies.get(policies) === capability.roles) return
  for (const role of policies.roles) {
    if (!capability.roles.includes(role)) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `The policies name the role ${describeInput(role)}, which is not in the role hierarchy`,
      )
    }
  }
  checkedHierarchies.set(policies, capability.roles)
}

/** True when the table has column rules (only called after guardFor found its policy). */
function withColumns(policies: Policies, table: string): boolean {
  return (policies.tables[table] as TablePolicy).columns !== undefined
}

function guardFor(policies: Policies, table: string, operation: PolicyOperation): Guard {
  const guard = Object.hasOwn(policies.tables, table)
    ? policies.tables[table]?.[operation]
    : undefined
  if (guard === undefined) {
    throw new ConfigurationError(
      'KH_NO_POLICY',
      `No ${operation} policy for table ${describeInput(table)}`,
    )
  }
  return guard
}

/**
 * Binds the policies to one database handle and one capability (one request). Each call looks the
 * guard up and runs the guarded statement; a table or operation without a policy is refused.
 * Denials carry visibility from the table's read policy (403 when readable, else 404).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` when a policy names a role outside the
 * capability's hierarchy; `KH_NO_POLICY` (from the handle) for an undeclared table or operation.
 * @example
 * const db = bindPolicies(policies, client, request.capability)
 * const thread = await db.insert('discussion_threads', { title, group_id, created_by })
 * const threads = await db.select('discussion_threads', { group_id }, { orderBy: [['created_at', 'desc']] })
 * await db.delete('discussion_threads', { id })
 */
// `any` (the default) is the untyped handle, as for definePolicies.
export function bindPolicies<DB = any>(
  policies: Policies<DB>,
  queryable: Queryable,
  capability: Capability,
  options: BindOptions = {},
): HandleOf<DB> {
  assertRoles(policies, capability)
  const prepared = options.prepared
  // 'rls' mode's queryable sets the signed capability: keyhole's schema is installed.
  const keyholeSchema = options.mode === 'rls' ? true : undefined
  const counted = options.counters ?? uncounted.statements
  const statements = encryptedStatements(policies.tables as EncryptedTables, options.dataKeys)
  // Only called after guardFor found the table's policy.
  const read = (table: string) => (policies.tables[table] as TablePolicy).read
  const handle = {
    async insert(table: string, values: Row | readonly Row[], opts: InsertOptions = {}) {
      const guard = guardFor(policies, table, 'insert')
      counted.insert++
      const access = withColumns(policies, table)
        ? columnAccess(policies.tables[table] as TablePolicy, capability, {
            table,
            operation: 'insert',
            values,
            guard,
            list: opts.returning,
            defaultList: '*',
          })
        : undefined
      return projected(
        statements.insert(queryable, capability, {
          into: table,
          values: values as Row,
          guard: access === undefined ? guard : (access.guard as Guard),
          readGuard: read(table),
          returning: access === undefined ? opts.returning : access.list,
          view: access?.view,
          atomic: opts.atomic,
          chosenKeys: opts.chosenKeys,
          keyholeSchema,
          prepared,
        }),
        access?.project,
        Array.isArray(values) ? 'inserted' : 'row',
      )
    },
    async select(table, where, opts = {}) {
      counted.select++
      const guard = guardFor(policies, table, 'read')
      const access = withColumns(policies, table)
        ? columnAccess(policies.tables[table] as TablePolicy, capability, {
            table,
            operation: 'select',
            where,
            orderBy: opts.orderBy,
            list: opts.columns,
            defaultList: '*',
          })
        : undefined
      return projected(
        statements.select(queryable, capability, {
          from: table,
          where: access === undefined ? where : access.where,
          guard,
          columns: access === undefined ? opts.columns : access.list,
          view: access?.view,
          orderBy: opts.orderBy,
          limit: opts.limit,
          offset: opts.offset,
          after: opts.after,
          prepared,
        }),
        access?.project,
        'rows',
      )
    },
    async count(table, where) {
      counted.count++
      const guard = guardFor(policies, table, 'read')
      const access = withColumns(policies, table)
        ? columnAccess(policies.tables[table] as TablePolicy, capability, {
            table,
            operation: 'count',
            where,
            defaultList: [],
          })
        : undefined
      return statements.count(queryable, capability, {
        from: table,
        where: access === undefined ? where : access.where,
        guard,
        prepared,
      })
    },
    async update(table, where, set, opts = {}) {
      counted.update++
      const guard = guardFor(policies, table, 'update')
      const access = withColumns(policies, table)
        ? columnAccess(policies.tables[table] as TablePolicy, capability, {
            table,
            operation: 'update',
            where,
            values: set,
            guard,
            list: opts.returning,
            defaultList: '*',
          })
        : undefined
      return projected(
        statements.update(queryable, capability, {
          table,
          where: access === undefined ? where : (access.where as Where),
          set,
          guard: access === undefined ? guard : (access.guard as Guard),
          readGuard: read(table),
          returning: access === undefined ? opts.returning : access.list,
          view: access?.view,
          chosenKeys: opts.chosenKeys,
          keyholeSchema,
          prepared,
        }),
        access?.project,
        'written',
      )
    },
    async delete(table, where, opts = {}) {
      counted.delete++
      const guard = guardFor(policies, table, 'delete')
      const access = withColumns(policies, table)
        ? columnAccess(policies.tables[table] as TablePolicy, capability, {
            table,
            operation: 'delete',
            where,
            list: opts.returning,
            defaultList: [],
          })
        : undefined
      return projected(
        statements.delete(queryable, capability, {
          from: table,
          where: access === undefined ? where : (access.where as Where),
          guard,
          readGuard: read(table),
          returning: access === undefined ? opts.returning : access.list,
          view: access?.view,
          prepared,
        }),
        access?.project,
        'written',
      )
    },
  } as Omit<PolicyHandle, keyof RawSqlMethods>
  const settings = {
    mode: options.mode === 'rls' ? 'rls' : 'guard',
    transaction: options.transaction === 'statement' ? 'statement' : 'request',
    prepared: prepared !== false,
  } as const
  const bound = attachRawSql(
    handle,
    queryable,
    capability,
    settings,
    (table, operation) => guardFor(policies, table, operation),
    counted,
  )
  registerHandle(bound, statements)
  return bound as PolicyHandle as HandleOf<DB>
}
