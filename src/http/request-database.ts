/**
 * One request's database work in 'rls' mode: the transaction opens on the first statement (a
 * request that touches no data costs no round trip), every statement of the request runs in it,
 * and the adapter ends it once, when the response is decided: COMMIT on success, ROLLBACK on
 * failure. The session releases the client in every case (`release(err)` on failure), so nothing
 * of this request's capability survives on the pooled connection.
 */
import type { Capability } from '../capability/capability.ts'
import type { DatabaseRunner } from '../db/database-runner.ts'
import type { SessionFactory, SessionQueryable } from '../db/session.ts'
import { ConfigurationError, TokenError } from '../errors.ts'
import type { PolicyHandle } from '../sql/policies.ts'
import type { Queryable } from '../sql/queryable.ts'

/** Ends `work` with a ROLLBACK; never surfaces, because the adapter asked for it. */
class Rollback extends Error {}

export interface RequestTransaction {
  /** pg's `query` shape; the first call opens the transaction. */
  readonly queryable: SessionQueryable
  /**
   * Commits (`ok`) or rolls back, once; later calls and a never-opened transaction do nothing.
   * Rejects when COMMIT fails, so the adapter can answer an error instead of a false success.
   */
  end(ok: boolean): Promise<void>
}

export function requestTransaction(
  sessions: SessionFactory,
  capability: Capability,
): RequestTransaction {
  let opened: Promise<SessionQueryable> | undefined
  let settled: Promise<unknown> | undefined
  let finish: ((ok: boolean) => void) | undefined
  let ended = false

  const open = () =>
    (opened ??= new Promise<SessionQueryable>((resolve, reject) => {
      settled = sessions.withCapability(capability, (db) => {
        resolve(db)
        return new Promise<void>((commit, rollback) => {
          finish = (ok) => (ok ? commit() : rollback(new Rollback('rolled back by keyhole')))
        })
      })
      // Rejects before work() ran only when BEGIN or the capability failed: the query rejects too.
      settled.catch(reject)
    }))

  return {
    queryable: {
      query: (query, values) =>
        ended
          ? Promise.reject(new Error('keyhole: the request transaction has ended'))
          : open().then((db) => db.query(query, values)),
    } as SessionQueryable,
    async end(ok) {
      if (ended) return
      ended = true
      if (opened === undefined) return
      // A failed open already rolled back and released: nothing left to end.
      const db = await opened.catch(() => undefined)
      if (db === undefined) return
      ;(finish as (ok: boolean) => void)(ok)
      try {
        await settled
      } catch (error) {
        if (!(error instanceof Rollback)) throw error
      }
    },
  }
}

/**
 * How a request's statements commit in 'rls' mode:
 * - `'request'` (the default): all in one transaction, committed when the response is decided
 *   (BEGIN and the capability go with the first statement, COMMIT with the response: two round
 *   trips for a one-statement request);
 * - `'statement'`: each statement in its own transaction with the capability, committed with it,
 *   in one round trip. For routes that write at most once: two writes would commit separately.
 */
export type RequestTransactionMode = 'request' | 'statement'

/** A route's `transaction` setting: absent, or a {@link RequestTransactionMode}. */
export function assertTransactionMode(
  mode: unknown,
  route: string,
): asserts mode is RequestTransactionMode | undefined {
  if (mode !== undefined && mode !== 'request' && mode !== 'statement') {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `Invalid route config keyhole.transaction on ${route}: must be 'request' or 'statement'`,
    )
  }
}

/** The `request.db` of every request: one policy-bound handle, and in 'rls' mode one transaction. */
export interface RequestDatabases {
  /** True in 'rls' mode: the adapter must {@link RequestDatabases.end} each request. */
  readonly transactional: boolean
  /**
   * The handle of the request `key` (the same one on every call). Without a capability (a public
   * route) it throws 401 `KH_TOKEN_MISSING`: guarded data stays out of reach. In 'rls' mode,
   * `transaction` says how the request's statements commit (see {@link RequestTransactionMode}).
   */
  handle(
    key: object,
    capability: Capability | null | undefined,
    transaction?: RequestTransactionMode,
  ): PolicyHandle
  /** Ends the request's transaction, if it opened one: COMMIT when `ok`, else ROLLBACK. */
  end(key: object, ok: boolean): Promise<void>
  /**
   * Whether {@link RequestDatabases.end} has anything to do for the request: false when it took
   * no handle, one of `transaction: 'statement'` (each statement committed with itself), or was
   * ended already. The adapter then skips the hook's promise.
   */
  pending(key: object): boolean
}

/** The `request.db`s of `runner` (the one `keyhole.run` uses: the same handle, the same session). */
export function requestDatabases(runner: DatabaseRunner, realm: string): RequestDatabases {
  const { sessions, database: db } = runner
  const handles = new WeakMap<object, PolicyHandle>()
  const transactions = new WeakMap<object, RequestTransaction>()
  return {
    transactional: sessions !== undefined,
    handle(key, capability, transaction = 'request') {
      let handle = handles.get(key)
      if (handle !== undefined) return handle
      if (!capability) throw new TokenError('KH_TOKEN_MISSING', { realm })
      let queryable: Queryable = db.pool
      if (sessions !== undefined && transaction === 'statement') {
        queryable = sessions.autocommit(capability)
      } else if (sessions !== undefined) {
        const transaction = requestTransaction(sessions, capability)
        transactions.set(key, transaction)
        queryable = transaction.queryable
      }
      handle = runner.bind(queryable, capability, transaction)
      handles.set(key, handle)
      return handle
    },
    async end(key, ok) {
      const transaction = transactions.get(key)
      // Ends once (the transaction's own end is idempotent too): later calls find nothing pending.
      transactions.delete(key)
      await transaction?.end(ok)
    },
    pending: (key) => transactions.has(key),
  }
}
