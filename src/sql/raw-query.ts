/**
 * The application's own SQL on a policy-bound handle: `query` and `guard`. In 'rls' mode any
 * statement runs on the handle's queryable (the request's capability transaction), where the
 * forced policies condition it. In 'guard' mode nothing but the statement conditions it, so the
 * rule is the simplest one that cannot be missed by accident: `query` runs only an {@link Sql}
 * built with the `sql` tag that embeds a guard fragment of this handle's capability, and no
 * fragment of another. keyhole does not parse SQL: which tables the statement names, and whether
 * each is guarded, stays the author's to get right; what the rule stops is a plain string, a
 * `{ text, values }` object, or a fragment cached from another request reaching the database.
 */
import { uncounted, type StatementKind } from '../metrics.ts'
import type { Capability } from '../capability/capability.ts'
import { ConfigurationError } from '../errors.ts'
import type { Guard } from './guard.ts'
import { describeInput } from './identifier.ts'
import { mapDatabaseError } from './map-database-error.ts'
import type { Queryable } from './queryable.ts'
import { guardFragment, Sql, type GuardFragmentOptions } from './sql-tag.ts'
import { statementNamer } from './statement-names.ts'

/** `request.db.query(sql`…`)`'s prepared statement names: `keyhole_sql_` and a hash of the text. */
const nameOfSql = statementNamer('keyhole_sql_')

/** What `request.db.query` takes: pg's config shape (or an {@link Sql}). */
export interface RawQueryConfig {
  readonly text: string
  readonly values?: readonly unknown[] | undefined
  /** A named prepared statement (parsed once per connection). */
  readonly name?: string | undefined
}

/** pg's result shape. */
export interface RawQueryResult<R = Record<string, unknown>> {
  readonly rows: R[]
  readonly rowCount: number | null
  readonly command: string | null
  readonly fields: unknown[]
}

/** Which operations a guard fragment may stand for: those that condition existing rows. */
export type GuardFragmentOperation = 'read' | 'update' | 'delete'

/**
 * How a handle runs raw SQL: 'rls' (the queryable sets the capability and the policies are
 * forced) or 'guard' (nothing but the statement's own guard); and, in 'rls' mode, whether its
 * statements share one transaction (`'request'`) or each commit alone (`'statement'`).
 */
export interface RawSqlSettings {
  readonly mode: 'guard' | 'rls'
  readonly transaction: 'request' | 'statement'
  /** Whether statements may be named prepared statements (the database option `prepared`). */
  readonly prepared: boolean
}

/** What keyhole/kysely reads of a handle. @internal */
export interface RawSqlAccess extends RawSqlSettings {
  readonly capability: Capability
  /** Runs a statement already judged (no guard-mode rule), its database errors mapped. */
  run(config: RawQueryConfig): Promise<RawQueryResult<never>>
  guard(table: string, operation: GuardFragmentOperation, options?: GuardFragmentOptions): Sql
}

/**
 * What every handle from `bindPolicies` is: its raw-SQL access sits in a private field that only
 * this module reads, so no other object can pass for a handle (as with the WeakMap this replaces).
 * Why not a WeakMap: a handle is made per request, and an entry per handle cost about 4 µs (the
 * ephemeron table growing, and the garbage collector walking it); nor is the access frozen (it is
 * reachable from keyhole's modules only, and freezing a fresh object cost another 4 µs). Measured on
 * Node 20: a `bindPolicies` call took 8.6 µs with both, 1.6 µs without.
 */
class BoundHandle {
  readonly #access: RawSqlAccess
  constructor(access: RawSqlAccess) {
    this.#access = access
  }
  static accessOf(handle: object): RawSqlAccess | undefined {
    return #access in handle ? (handle as BoundHandle).#access : undefined
  }
}

/** The raw-SQL access of a handle from `bindPolicies`, or undefined. @internal */
export function rawSqlAccess(handle: unknown): RawSqlAccess | undefined {
  return typeof handle === 'object' && handle !== null ? BoundHandle.accessOf(handle) : undefined
}

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

/** pg's two shapes, `query(text, values)` and `query(config)`, as one plain config. */
function toConfig(query: unknown, values: unknown): RawQueryConfig {
  if (values !== undefined && !Array.isArray(values)) {
    throw invalid('request.db.query: values must be an array')
  }
  if (typeof query === 'string') return { text: query, values }
  if (query instanceof Sql) {
    if (values !== undefined) {
      throw invalid('request.db.query: an sql`…` statement carries its own values')
    }
    return { text: query.text, values: query.values }
  }
  const config = query as { text?: unknown; values?: unknown; name?: unknown } | null
  if (typeof config !== 'object' || config === null || typeof config.text !== 'string') {
    throw invalid(
      'request.db.query needs SQL text, a { text, values } config or an sql`…` statement',
    )
  }
  if (config.values !== undefined && !Array.isArray(config.values)) {
    throw invalid('request.db.query: values must be an array')
  }
  if (config.name !== undefined && typeof config.name !== 'string') {
    throw invalid('request.db.query: name must be a string')
  }
  // Only these fields: anything else pg reads (a `submit` function makes it a submittable that
  // writes to the connection itself) never reaches the driver.
  return { text: config.text, values: values ?? config.values, name: config.name }
}

/**
 * Refuses, in 'guard' mode, a statement that does not embed this capability's guard.
 * @throws ConfigurationError `KH_UNGUARDED_SQL`
 */
export function assertGuardedSql(query: unknown, capability: Capability): void {
  const guards = query instanceof Sql ? Sql.guards(query) : undefined
  if (guards === undefined || guards.size === 0) {
    throw new ConfigurationError(
      'KH_UNGUARDED_SQL',
      "request.db.query in 'guard' mode runs only sql`…` that embeds request.db.guard(table, operation): nothing else would condition it",
    )
  }
  for (const other of guards) {
    if (other !== capability) {
      throw new ConfigurationError(
        'KH_UNGUARDED_SQL',
        "request.db.query in 'guard' mode: the statement embeds a guard made for another request's capability",
      )
    }
  }
}

/** The raw-SQL methods of a policy-bound handle. */
export interface RawSqlMethods {
  /**
   * Runs your own SQL, pg's shapes: `query(text, values)`, `query({ text, values, name })` or
   * `query(sql\`…\`)`. 'rls' mode: in the request's capability transaction, under the forced
   * policies. 'guard' mode: only an `sql` statement that embeds {@link RawSqlMethods.guard} of
   * this request. Database errors are mapped as a guarded statement's (SQLSTATE only, the
   * server's error kept as `cause`).
   * @throws ConfigurationError `KH_UNGUARDED_SQL` in 'guard' mode for anything else.
   */
  query<R = Record<string, unknown>>(
    query: string | RawQueryConfig | Sql,
    values?: readonly unknown[],
  ): Promise<RawQueryResult<R>>
  /**
   * The table's policy guard for `operation` as an SQL fragment on the row of `table` (or its
   * `alias`), for your own WHERE: the capability's groups and subject become parameters,
   * numbered by the `sql` tag that embeds it.
   * @throws ConfigurationError `KH_NO_POLICY` for a table or operation without a policy;
   * `KH_INVALID_IDENTIFIER` for a bad alias; `KH_INVALID_OPTIONS` for `'insert'`.
   */
  guard(table: string, operation: GuardFragmentOperation, options?: GuardFragmentOptions): Sql
}

/**
 * Builds `query` and `guard` over `queryable`: a handle with `handle`'s methods and these, that
 * keyhole/kysely recognises ({@link rawSqlAccess}).
 * `guardOf` looks the table's guard up (and throws `KH_NO_POLICY`); `counters` counts each run.
 */
export function attachRawSql<H extends object>(
  handle: H,
  queryable: Queryable,
  capability: Capability,
  settings: RawSqlSettings,
  guardOf: (table: string, operation: GuardFragmentOperation) => Guard,
  counters: Record<StatementKind, number> = uncounted.statements,
): H & RawSqlMethods {
  const run = async (config: RawQueryConfig) => {
    // Your own SQL, through `query` or keyhole/kysely: counted as a 'query'.
    counters.query++
    try {
      return (await queryable.query(config as never)) as RawQueryResult<never>
    } catch (error) {
      throw mapDatabaseError(error)
    }
  }
  const guard = (
    table: string,
    operation: GuardFragmentOperation,
    options?: GuardFragmentOptions,
  ) => {
    if (operation !== 'read' && operation !== 'update' && operation !== 'delete') {
      throw invalid(
        `request.db.guard: ${describeInput(operation)} is not 'read', 'update' or 'delete' (an insert's guard checks the values written: use request.db.insert)`,
      )
    }
    return guardFragment(guardOf(table, operation).node, capability, table, options)
  }
  const methods: RawSqlMethods = {
    async query(query: unknown, values?: readonly unknown[]) {
      const config = toConfig(query, values)
      if (settings.mode !== 'rls') assertGuardedSql(query, capability)
      // An sql`…` statement's text is the same on every call (its values are parameters, a guard's
      // too): named after it, as keyhole/kysely's queries are, it is parsed once per connection
      // instead of on every request, and planned once where PostgreSQL keeps the generic plan.
      // Your own text or config keeps the name you give.
      if (query instanceof Sql && settings.prepared) {
        return run({ text: config.text, values: config.values, name: nameOfSql(config.text) })
      }
      return run(config)
    },
    guard,
  } as RawSqlMethods
  // Field by field: a spread of `settings` here cost as much as the freeze.
  const access: RawSqlAccess = {
    mode: settings.mode,
    transaction: settings.transaction,
    prepared: settings.prepared,
    capability,
    run,
    guard,
  }
  return Object.assign(new BoundHandle(access), handle, methods)
}
