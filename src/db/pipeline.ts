/**
 * Several extended-protocol statements written before ONE Sync: one round trip. Outside an explicit
 * transaction they run in one implicit transaction that ends at the Sync (PostgreSQL protocol
 * §55.2.4), so a transaction-local setting made by the first is seen by the next and gone after.
 *
 * This is node-postgres's documented submittable interface (an object with `submit(connection)`
 * handed to `client.query`), built as pg-cursor builds it, on pg's own `Result` and `prepareValue`.
 */
import { ConfigurationError } from '../errors.ts'
import { loadPgInternals, type PgResult } from './pg-driver.ts'

/** One statement of a pipeline. A `name` makes it a prepared statement, parsed once per connection. */
export interface PipelineStatement {
  readonly text: string
  readonly values?: readonly unknown[] | undefined
  readonly name?: string | undefined
  /**
   * Whether the statement, by its result, dropped every prepared statement of the session (as
   * `keyhole.reset_session()` does when it finds planted ones, or `DEALLOCATE ALL`): then pg's client-side record of
   * parsed statements is cleared too, or pg would skip the Parse of the next named query and the
   * server would answer "prepared statement does not exist".
   */
  readonly forgetsPrepared?: ((result: PipelineResult) => boolean) | undefined
  /**
   * The caller reads only the statement's command and row count, never its rows: it is sent
   * without a Describe, so the server sends no RowDescription for it (one message less each way)
   * and any row it returns is dropped unparsed. Its result then has no rows and no fields.
   */
  readonly rowsUnread?: boolean | undefined
}

/** What a pipeline resolves to, per statement: pg's result shape. */
export interface PipelineResult {
  readonly command: string | null
  readonly rowCount: number | null
  readonly rows: unknown[]
  readonly fields: unknown[]
}

/** The part of pg's `Connection` a submittable writes to (see pg/lib/connection.js). */
export interface PgConnection {
  parsedStatements: Record<string, string>
  submittedNamedStatements: Record<string, string>
  stream: { cork?(): void; uncork?(): void }
  parse(message: { text: string; name?: string | undefined }): void
  bind(message: { statement?: string | undefined; values: unknown[] }): void
  describe(message: { type: 'P'; name: string }): void
  execute(message: { portal: string }): void
  sync(): void
  sendCopyFail(message: string): void
  /** pg's `Connection` is an EventEmitter: each backend message is emitted by its name. */
  prependOnceListener(
    event: 'readyForQuery',
    listener: (message: { status: string }) => void,
  ): unknown
}

type Callback = (error: unknown, results?: PipelineResult[]) => void

/**
 * The client a pipeline is sent on, when it can say the server's transaction status itself:
 * node-postgres's `Client#getTransactionStatus()` (pg 8.21+) returns what the last ReadyForQuery
 * carried, recorded before the active query hears of it.
 */
export interface StatusSource {
  getTransactionStatus?(): string | null
}

const connectionMethods = [
  'parse',
  'bind',
  'describe',
  'execute',
  'sync',
  'sendCopyFail',
  'prependOnceListener',
] as const

/**
 * Whether pg handed the pipeline node-postgres's own `Connection`: a client that is not a
 * node-postgres `Client` (pg.native, another driver behind a pg-shaped pool) hands something else,
 * or nothing, and the pipeline cannot write to it.
 */
export function isPgConnection(connection: unknown): connection is PgConnection {
  const c = connection as Record<string, unknown> | null | undefined
  if (typeof c !== 'object' || c === null) return false
  if (checked.has(c)) return true
  const valid =
    typeof c.parsedStatements === 'object' &&
    typeof c.stream === 'object' &&
    connectionMethods.every((method) => typeof c[method] === 'function')
  if (valid) checked.add(c)
  return valid
}

/** The connections found to be node-postgres's, each checked once (a pooled one serves many). */
const checked = new WeakSet<object>()

function unsupportedPool(): ConfigurationError {
  return new ConfigurationError(
    'KH_INVALID_OPTIONS',
    "Invalid option database.pool: 'rls' mode pipelines each request's statements on node-postgres's connection, and this pool's clients are not node-postgres Clients: give a pg.Pool (pg ^8.11.0, not pg.native)",
  )
}

/**
 * Submittable for `client.query(new Pipeline([...]))`; await `pipeline.done`. On an error the
 * statements after the failing one are skipped by the server and the implicit transaction rolls
 * back. After an error the caller must destroy the connection (`release(err)`): which named
 * statements the server parsed before the error is not tracked.
 */
export class Pipeline {
  readonly done: Promise<PipelineResult[]>
  callback: Callback | undefined
  readonly #statements: readonly PipelineStatement[]
  readonly #results: PgResult[]
  /** How many statements completed (also after an error: those before it). */
  #index = 0
  #finished = false
  #rowError: unknown = undefined
  #status: string | undefined = undefined
  /** Per statement: whether it was bound without a Parse, pg believing it parsed. */
  readonly #reused: boolean[] = []
  #lost = false
  /** The client, when it reports the status itself: then no listener is added per pipeline. */
  readonly #reporter: Required<StatusSource> | undefined

  /**
   * @param client the client the pipeline is sent on: when it has `getTransactionStatus()`
   *   (pg 8.21+) the status is read from it, else from the ReadyForQuery message by a listener
   */
  constructor(statements: readonly PipelineStatement[], client?: object) {
    this.#statements = statements
    const reporter = client as StatusSource | undefined
    this.#reporter =
      typeof reporter?.getTransactionStatus === 'function'
        ? (reporter as Required<StatusSource>)
        : undefined
    const { Result } = loadPgInternals()
    this.#results = statements.map(() => new Result())
    this.done = new Promise((resolve, reject) => {
      this.callback = (error, results) => (error ? reject(error) : resolve(results!))
    })
  }

  /** The results of the statements that completed, in order (fewer than asked after an error). */
  get completed(): readonly PipelineResult[] {
    return this.#results.slice(0, this.#index)
  }

  /**
   * The transaction status the server reported with the pipeline's ReadyForQuery: `'I'` idle, `'T'`
   * inside a transaction block, `'E'` inside a failed one; `undefined` before it arrived. A statement
   * such as `BEGIN` turns the implicit transaction into an explicit one that outlives the Sync.
   * Known for a pipeline that completed; after an error only where read by the listener (pg
   * before 8.21: pg hands the ReadyForQuery after an error to no query).
   */
  get transactionStatus(): string | undefined {
    return this.#status
  }

  /**
   * Whether the pipeline failed because the server no longer holds a named statement pg believed
   * parsed, and so bound without a Parse (SQLSTATE 26000 at that statement): an earlier request on
   * the connection ran `DEALLOCATE` or `DISCARD ALL`. The failing statement did not run.
   */
  get lostPrepared(): boolean {
    return this.#lost
  }

  submit(connection: PgConnection): Error | null {
    if (!isPgConnection(connection)) return unsupportedPool()
    // pg before 8.23 keeps no record of statements parsed but not yet complete: ours is then its own.
    connection.submittedNamedStatements ??= {}
    const values: unknown[][] = []
    try {
      // Serialise every value before writing anything: a bad value must not leave half a pipeline.
      const { prepareValue } = loadPgInternals()
      for (const s of this.#statements) {
        const prepared: unknown[] = []
        for (const v of s.values ?? []) prepared.push(prepareValue(v))
        values.push(prepared)
      }
    } catch (error) {
      return error as Error
    }
    // pg before 8.21 hands the ReadyForQuery to the active query without its status: read it
    // first. (A listener added and removed per pipeline: measurable on every request.)
    if (this.#reporter === undefined) {
      connection.prependOnceListener('readyForQuery', (message) => {
        this.#status = message.status
      })
    }
    connection.stream.cork?.()
    try {
      this.#statements.forEach((s, i) => {
        const parsed =
          s.name !== undefined &&
          (connection.parsedStatements[s.name] ?? connection.submittedNamedStatements[s.name])
        if (parsed === false || parsed === undefined) {
          connection.parse({ text: s.text, name: s.name })
          if (s.name !== undefined) connection.submittedNamedStatements[s.name] = s.text
        }
        this.#reused[i] = parsed !== false && parsed !== undefined
        connection.bind({ statement: s.name, values: values[i]! })
        if (s.rowsUnread !== true) connection.describe({ type: 'P', name: '' })
        connection.execute({ portal: '' })
      })
      connection.sync()
    } finally {
      connection.stream.uncork?.()
    }
    return null
  }

  handleRowDescription(message: { fields: unknown[] }): void {
    this.#results[this.#index]!.addFields(message.fields)
  }

  handleDataRow(message: { fields: unknown[] }): void {
    if (this.#statements[this.#index]!.rowsUnread === true) return
    const result = this.#results[this.#index]!
    try {
      result.addRow(result.parseRow(message.fields))
    } catch (error) {
      // A custom type parser threw: report it once the server is ready again.
      this.#rowError ??= error
    }
  }

  handleCommandComplete(message: unknown): void {
    this.#results[this.#index]!.addCommandComplete(message)
    this.#index++
  }

  handleEmptyQuery(): void {
    this.#index++
  }

  handleError(error: unknown): void {
    this.#lost =
      (error as { code?: unknown } | null)?.code === '26000' && this.#reused[this.#index] === true
    this.#finish(error)
  }

  handleReadyForQuery(connection: PgConnection): void {
    // pg recorded the message's status on the client before handing it to the active query.
    if (this.#reporter !== undefined)
      this.#status = this.#reporter.getTransactionStatus() ?? undefined
    if (this.#rowError === undefined) {
      for (const [i, s] of this.#statements.entries()) {
        if (s.forgetsPrepared?.(this.#results[i]!) === true) {
          for (const name of Object.keys(connection.parsedStatements)) {
            delete connection.parsedStatements[name]
          }
        }
        if (s.name === undefined) continue
        connection.parsedStatements[s.name] = s.text
        delete connection.submittedNamedStatements[s.name]
      }
    }
    this.#finish(this.#rowError, this.#results)
  }

  handleCopyInResponse(connection: PgConnection): void {
    connection.sendCopyFail('keyhole does not run COPY FROM STDIN')
    // The server ignores a Sync received in copy-in mode (ours went before), then discards until
    // the next one: send it, or the connection waits forever.
    connection.sync()
  }

  handleCopyData(): void {}

  handlePortalSuspended(): void {}

  #finish(error: unknown, results?: PipelineResult[]): void {
    /* c8 ignore next: a second completion (an error after ReadyForQuery) is dropped; a healthy connection does not send one */
    if (this.#finished) return
    this.#finished = true
    this.callback!(error, results)
  }
}
