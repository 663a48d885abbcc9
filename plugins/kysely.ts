/**
 * keyhole for Kysely: `kysely<DB>(request.db)` is a `Kysely<DB>` whose every query runs on the
 * request's handle, in 'rls' mode in the request's capability transaction, where the forced
 * policies condition any query Kysely can build (joins, aggregates, CTEs); `guarded(request.db,
 * table, operation)` is the table's policy guard as a Kysely expression, the same SQL a guarded
 * statement carries, for 'guard' mode. No pool of its own: created per request, it costs a few
 * objects. Loaded only from this entry point: `keyhole`, `keyhole/fastify` and `keyhole/express`
 * never import kysely.
 */
import {
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type KyselyConfig,
  type QueryResult,
  type RawBuilder,
  type SqlBool,
  type TransactionSettings,
} from 'kysely'
import type { Capability } from '../src/capability/capability.ts'
import { ConfigurationError } from '../src/errors.ts'
import { kGenerated } from '../src/sql/generated-statement.ts'
import {
  rawSqlAccess,
  type GuardFragmentOperation,
  type RawQueryConfig,
  type RawSqlAccess,
  type RawSqlMethods,
} from '../src/sql/raw-query.ts'
import { Sql, type GuardFragmentOptions } from '../src/sql/sql-tag.ts'
import { statementNamer } from '../src/sql/statement-names.ts'
import { vouchedFor } from './kysely-vouch.ts'

/** `Kysely`'s options, except the dialect: keyhole's runs on the request's handle. */
export type KeyholeKyselyOptions = Omit<KyselyConfig, 'dialect'>

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

function accessOf(db: unknown, verb: string): RawSqlAccess {
  const access = rawSqlAccess(db)
  if (access === undefined) {
    throw invalid(`${verb} needs request.db (or a handle from bindPolicies)`)
  }
  return access
}

/**
 * A parameter of a {@link guarded} expression: it says, through Kysely's compilation (plugins
 * copy nodes, never parameter values), that the query embeds the guard of this capability.
 */
class GuardValue {
  readonly value: unknown
  readonly #capability: Capability
  constructor(value: unknown, capability: Capability) {
    this.value = value
    this.#capability = capability
    Object.freeze(this)
  }
  static capability(value: GuardValue): Capability {
    return value.#capability
  }
}

/**
 * The query's parameters as sent, guard values unwrapped; in 'guard' mode, refuses a query that
 * embeds no {@link guarded} expression of this request's capability, or one of another's.
 */
function judge(parameters: readonly unknown[], access: RawSqlAccess): unknown[] {
  let own = false
  let foreign = false
  const values = parameters.map((value) => {
    if (!(value instanceof GuardValue)) return value
    if (GuardValue.capability(value) === access.capability) own = true
    else foreign = true
    return value.value
  })
  if (access.mode !== 'rls' && (!own || foreign)) {
    throw new ConfigurationError(
      'KH_UNGUARDED_SQL',
      foreign
        ? "keyhole/kysely in 'guard' mode: the query embeds a guard made for another request's capability"
        : "keyhole/kysely in 'guard' mode runs only queries whose where embeds guarded(request.db, table, operation): nothing else would condition them",
    )
  }
  return values
}

const AFFECTING = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE'])

/**
 * The name a text runs under: `keyhole_kysely_` and a hash of the text, for the first 200 texts
 * (src/sql/statement-names.ts); undefined (an unnamed statement) after them.
 */
const nameOf = statementNamer('keyhole_kysely_')

/**
 * The driver of one request: one connection, the handle, lent to one user at a time (a Kysely
 * transaction holds it until it ends, so no other query of this Kysely runs inside it).
 * Transactions are savepoints of the request's transaction.
 */
function requestDriver(access: RawSqlAccess): Driver {
  // keyhole's own savepoint statements (its names, fixed text): marked as generated, so that a
  // Kysely transaction of vouched queries skips the session reset as the queries alone do.
  const run = (text: string) => access.run({ text, [kGenerated]: true } as RawQueryConfig)
  let free: Promise<void> = Promise.resolve()
  let release: (() => void) | undefined
  const savepoints: string[] = []
  let next = 0
  const connection: DatabaseConnection = {
    async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
      const values = judge(compiled.parameters, access)
      // Read once: the text vouched for is the text sent.
      const text = compiled.sql
      const name = access.prepared ? nameOf(text) : undefined
      // 'rls' mode: a text keyhole's compiler writes from Kysely's builders alone (kysely-vouch.ts)
      // is marked as keyhole's own, so a request made only of such queries skips the session
      // reset. The mark is set here, on keyhole's config, never read from the application's.
      const result = await access.run(
        access.mode === 'rls' && vouchedFor(text, compiled)
          ? ({ text, values, name, [kGenerated]: true } as RawQueryConfig)
          : { text, values, name },
      )
      return {
        rows: result.rows as R[],
        numAffectedRows:
          result.command !== null && AFFECTING.has(result.command)
            ? BigInt(result.rowCount as number)
            : undefined,
      }
    },
    // Kysely's Driver must offer streaming; this one refuses before it would yield anything.
    async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
      throw invalid('keyhole/kysely does not stream: use execute()')
    },
  }
  return {
    async init() {},
    async destroy() {},
    async acquireConnection() {
      const previous = free
      let done!: () => void
      free = new Promise<void>((resolve) => (done = resolve))
      await previous
      release = done
      return connection
    },
    async releaseConnection() {
      ;(release as () => void)()
    },
    async beginTransaction(_connection, settings: TransactionSettings) {
      if (access.mode !== 'rls' || access.transaction !== 'request') {
        throw invalid(
          "keyhole/kysely: a transaction is a savepoint of the request's transaction, so it needs 'rls' mode with the request transaction (not 'guard' mode, not transaction: 'statement')",
        )
      }
      if (settings.isolationLevel !== undefined || settings.accessMode !== undefined) {
        throw invalid(
          "keyhole/kysely: a transaction runs as a savepoint of the request's transaction: it takes no isolation level or access mode",
        )
      }
      const name = `keyhole_kysely_${++next}`
      await run(`SAVEPOINT ${name}`)
      savepoints.push(name)
    },
    async commitTransaction() {
      await run(`RELEASE SAVEPOINT ${savepoints.pop()}`)
    },
    async rollbackTransaction() {
      const name = savepoints.pop()
      await run(`ROLLBACK TO SAVEPOINT ${name}`)
      await run(`RELEASE SAVEPOINT ${name}`)
    },
  }
}

// Stateless (the compiler's state lives within one synchronous compileQuery): shared.
const adapter = new PostgresAdapter()
const compiler = new PostgresQueryCompiler()

/**
 * A `Kysely<DB>` on the request's handle: every query runs through `request.db.query`, so in
 * 'rls' mode in the request's capability transaction (or each alone with `transaction:
 * 'statement'`), under the forced policies, the session reset after it; in 'guard' mode only
 * queries that embed {@link guarded} run (`KH_UNGUARDED_SQL` otherwise). `db.transaction()` is a
 * savepoint of the request's transaction ('rls' mode, request transaction only): it commits with
 * the response, and rolls back alone when its callback throws. Create one per request (a few
 * objects, no pool, no connection until the first query). Streaming is not supported.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` when `db` is not a handle from keyhole.
 * @example
 * import { kysely } from 'keyhole/kysely'
 * app.get('/threads', async (request) => {
 *   const db = kysely<DB>(request.db)
 *   return db.selectFrom('discussion_threads as t')
 *     .leftJoin('posts as p', 'p.thread_id', 't.id')
 *     .select(['t.id', 't.title', (eb) => eb.fn.count<number>('p.id').as('postCount')])
 *     .groupBy('t.id')
 *     .execute()
 * })
 */
export function kysely<DB>(db: RawSqlMethods, options: KeyholeKyselyOptions = {}): Kysely<DB> {
  const driver = requestDriver(accessOf(db, 'kysely()'))
  return new Kysely<DB>({
    ...options,
    dialect: {
      createAdapter: () => adapter,
      createDriver: () => driver,
      createQueryCompiler: () => compiler,
      createIntrospector: (db) => new PostgresIntrospector(db),
    },
  })
}

/**
 * The table's policy guard for `operation` as a Kysely expression for `where`: the SQL of
 * `request.db.guard(table, operation, options)`, the same a guarded statement carries, its
 * parameters numbered by Kysely. Required in 'guard' mode; in 'rls' mode it only repeats what
 * the policies already enforce. A guard that folds for this capability (an admin's group check)
 * is the parameter `$n::boolean`; one left without parameters (an admin's parent check) gets
 * `AND $n::boolean` (true), so that every guarded() carries a parameter 'guard' mode can see.
 *
 * The generated SQL for the example (non-admin):
 * ```sql
 * select "t".* from "discussion_threads" as "t" where "t"."group_id" = ANY ($1::uuid[])
 * ```
 * @throws ConfigurationError `KH_NO_POLICY`, `KH_INVALID_IDENTIFIER` (alias), as
 * `request.db.guard`.
 * @example
 * const threads = await kysely<DB>(request.db)
 *   .selectFrom('discussion_threads as t')
 *   .selectAll('t')
 *   .where(guarded(request.db, 'discussion_threads', 'read', { alias: 't' }))
 *   .execute()
 */
export function guarded(
  db: RawSqlMethods,
  table: string,
  operation: GuardFragmentOperation,
  options?: GuardFragmentOptions,
): RawBuilder<SqlBool> {
  const access = accessOf(db, 'guarded()')
  const fragment = access.guard(table, operation, options)
  const values = fragment.values.map((value) => new GuardValue(value, access.capability))
  if (values.length === 0) {
    // Still one guard parameter, so that 'guard' mode sees the guard: the folded constant itself,
    // or TRUE beside a guard without parameters (an admin's parent check: the parent must exist).
    const folded = fragment.text === 'TRUE' || fragment.text === 'FALSE'
    const marker = new GuardValue(folded ? fragment.text === 'TRUE' : true, access.capability)
    return folded
      ? sql<SqlBool>`${marker}::boolean`
      : sql<SqlBool>`(${sql.raw(fragment.text)} AND ${marker}::boolean)`
  }
  const pieces = [...Sql.pieces(fragment)]
  const template = Object.assign(pieces, { raw: [...pieces] })
  return sql<SqlBool>(template, ...values)
}

export type { GuardFragmentOperation, GuardFragmentOptions }
