/**
 * The request session: a request's statements run on ONE pooled client in ONE transaction whose
 * first act is to set the signed capability (transaction-local), so the database's row-level
 * security sees the same capability as the application's guards, and nothing of it survives the
 * transaction on the pooled connection.
 */
import type { Capability } from '../capability/capability.ts'
import { ServiceUnavailable } from '../errors.ts'
import { Pipeline, type PipelineResult, type PipelineStatement } from './pipeline.ts'
import { createCapabilitySigner } from './sign-capability.ts'

/** The part of a pg `PoolClient` the session uses. */
export interface SessionClient {
  // `any`: pg's overloads (a submittable returns itself, a config returns a promise).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query(query: any, values?: any): any
  release(error?: Error | boolean): void
}

/** The part of a pg `Pool` the session uses: bring your own pool. */
export interface SessionPool {
  connect(): Promise<SessionClient>
}

/** A statement in pg's config shape; `name` makes it a prepared statement. */
export interface SessionQuery {
  readonly text: string
  readonly values?: readonly unknown[] | undefined
  readonly name?: string | undefined
}

/** pg's result shape, as the session returns it. */
export interface SessionResult<R = Record<string, unknown>> {
  readonly command: string | null
  readonly rowCount: number | null
  readonly rows: R[]
  readonly fields: unknown[]
}

/** What a session's work receives: pg's `query` shape, bound to the request's transaction. */
export interface SessionQueryable {
  query<R = Record<string, unknown>>(
    query: string | SessionQuery,
    values?: readonly unknown[],
  ): Promise<SessionResult<R>>
}

export interface SessionFactoryOptions {
  /** The RUNTIME role's pool (a pg `Pool`, or anything with `connect()` → client). */
  readonly pool: SessionPool
  /** The capability-signing key: at least 32 bytes, or their base64url text. */
  readonly signingKey: Uint8Array | string
  /**
   * Send `keyhole.set_capability` as a named prepared statement (parsed once per connection).
   * Behind PgBouncer in transaction mode this needs `max_prepared_statements` (PgBouncer 1.21+).
   * @default true
   */
  readonly prepared?: boolean | undefined
}

export interface SessionFactory {
  /**
   * Runs `work` in one transaction on one client, after setting the signed capability:
   * ```sql
   * BEGIN; SELECT keyhole.set_capability($1)   -- one round trip
   * …work's statements…
   * COMMIT; DISCARD ALL                         -- one round trip; on any failure: ROLLBACK, and
   *                                             -- the client destroyed
   * ```
   * Resolves to what `work` resolves to. `db` must not be used after `work` settles.
   * @throws ServiceUnavailable `KH_UNAVAILABLE` when the database refuses the signed capability
   * (its signing key or clock differs from the application's).
   */
  withCapability<T>(capability: Capability, work: (db: SessionQueryable) => Promise<T>): Promise<T>
  /**
   * Runs ONE statement with the capability in one round trip: the capability and the statement
   * are written before one Sync and run in one transaction that ends with them.
   * ```sql
   * BEGIN; SELECT keyhole.set_capability($1); <statement>; COMMIT; DISCARD ALL   -- one Sync
   * ```
   */
  runOne<R = Record<string, unknown>>(
    capability: Capability,
    query: string | SessionQuery,
    values?: readonly unknown[],
  ): Promise<SessionResult<R>>
  /**
   * A queryable on which each statement is its own {@link runOne}: hand it to `bindPolicies` for
   * requests that run one statement at a time and need no transaction around them.
   */
  autocommit(capability: Capability): SessionQueryable
}

const SET_CAPABILITY = 'SELECT keyhole.set_capability($1) AS accepted'

/**
 * Ends every request on a pooled connection: whatever the request's statements left in the SESSION
 * (an SQL injection running as the runtime role can PREPARE a statement under the name of one of
 * keyhole's, create a TEMP table that shadows a guarded one, SET search_path, LISTEN…) would
 * otherwise run under the NEXT request's capability, maybe another user's. It cannot run in a
 * transaction block, so it follows the COMMIT; after a COMMIT the server is outside any
 * transaction, so it needs no Sync of its own and costs no round trip.
 */
const DISCARD_ALL: PipelineStatement = { text: 'DISCARD ALL', discardsPrepared: true }

function refused(): ServiceUnavailable {
  return new ServiceUnavailable({
    message:
      'The database refused the signed capability: the signing key or the clock of the application and the database differ (run `keyhole setup` with the same key)',
  })
}

function accepted(result: PipelineResult | undefined): boolean {
  return (result?.rows[0] as { accepted?: unknown } | undefined)?.accepted === true
}

function committed(result: PipelineResult | undefined): void {
  // A transaction that failed inside work() (an error it caught) answers COMMIT with ROLLBACK.
  if (result?.command !== 'COMMIT') throw new Error('keyhole: the transaction was rolled back')
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error('keyhole session failed')
}

function statement(query: string | SessionQuery, values?: readonly unknown[]): SessionQuery {
  return typeof query === 'string' ? { text: query, values } : query
}

/**
 * Creates the request sessions over a pool of the RUNTIME role.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for a short or malformed signing key.
 * @example
 * const sessions = createSessionFactory({ pool, signingKey: process.env.KEYHOLE_SIGNING_KEY })
 * const rows = await sessions.withCapability(request.capability, async (db) => {
 *   const handle = bindPolicies(policies, db, request.capability)
 *   return handle.select('posts', { group_id: groupId })
 * })
 */
export function createSessionFactory(options: SessionFactoryOptions): SessionFactory {
  const signer = createCapabilitySigner(options.signingKey)
  const pool = options.pool
  const name = options.prepared === false ? undefined : 'keyhole_set_capability'
  const setStatement = (capability: Capability): PipelineStatement => ({
    name,
    text: SET_CAPABILITY,
    values: [signer.sign(capability)],
  })

  async function pipeline(client: SessionClient, statements: PipelineStatement[]) {
    const p = new Pipeline(statements)
    client.query(p)
    try {
      return await p.done
    } catch (error) {
      // The statement failed because the capability was refused: say so, not "permission denied".
      // (statement 0 is BEGIN, 1 sets the capability.)
      if (p.completed.length > 1 && !accepted(p.completed[1])) throw refused()
      throw error
    }
  }

  /** Runs a pipeline that does not set the capability (its failure is the server's error). */
  async function ended(client: SessionClient, statements: PipelineStatement[]) {
    const p = new Pipeline(statements)
    client.query(p)
    return p.done
  }

  async function runOne<R>(
    capability: Capability,
    query: string | SessionQuery,
    values?: readonly unknown[],
  ): Promise<SessionResult<R>> {
    const client = await pool.connect()
    try {
      const [, set, result, commit] = await pipeline(client, [
        { text: 'BEGIN' },
        setStatement(capability),
        statement(query, values),
        { text: 'COMMIT' },
        DISCARD_ALL,
      ])
      if (!accepted(set)) throw refused()
      committed(commit)
      client.release()
      return result as SessionResult<R>
    } catch (error) {
      // Never reuse a connection after a failure: destroy it.
      client.release(toError(error))
      throw error
    }
  }

  async function withCapability<T>(
    capability: Capability,
    work: (db: SessionQueryable) => Promise<T>,
  ): Promise<T> {
    const client = await pool.connect()
    let open = true
    const db: SessionQueryable = {
      query(query, values) {
        if (!open) {
          return Promise.reject(new Error('keyhole: the session ended; run queries inside work()'))
        }
        return client.query(statement(query, values))
      },
    }
    try {
      const [, set] = await pipeline(client, [{ text: 'BEGIN' }, setStatement(capability)])
      if (!accepted(set)) throw refused()
      const value = await work(db)
      open = false
      const [commit] = await ended(client, [{ text: 'COMMIT' }, DISCARD_ALL])
      committed(commit)
      client.release()
      return value
    } catch (error) {
      open = false
      await Promise.resolve(client.query('ROLLBACK')).catch(() => {})
      client.release(toError(error))
      throw error
    }
  }

  return Object.freeze({
    withCapability,
    runOne,
    autocommit(capability: Capability): SessionQueryable {
      return Object.freeze({
        query: <R>(query: string | SessionQuery, values?: readonly unknown[]) =>
          runOne<R>(capability, query, values),
      })
    },
  })
}
