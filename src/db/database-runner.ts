/**
 * How keyhole runs a capability's statements on a pool, in either mode: the one place that binds
 * the policies to a capability and opens its transaction. `request.db` (src/http/) and
 * `keyhole.run` are both built on it, so a worker gets exactly what a request gets.
 */
import type { Capability } from '../capability/capability.ts'
import { ServiceUnavailable } from '../errors.ts'
import { bindPolicies, type PolicyHandle } from '../sql/policies.ts'
import type { Queryable } from '../sql/queryable.ts'
import type { ResolvedDatabase } from './database-options.ts'
import { uncounted, type MetricCounters } from '../metrics.ts'
import {
  createSessionFactory,
  type SessionClient,
  type SessionFactory,
  type SessionQueryable,
} from './session.ts'

export interface DatabaseRunner {
  /** The database options, resolved. */
  readonly database: ResolvedDatabase
  /** The signed sessions in 'rls' mode; `undefined` in 'guard' mode. */
  readonly sessions: SessionFactory | undefined
  /**
   * The policy-bound handle of `capability` over `queryable`; in 'rls' mode `transaction` says
   * whether its statements share one transaction (see `BindOptions.transaction`).
   */
  bind(
    queryable: Queryable,
    capability: Capability,
    transaction?: 'request' | 'statement',
  ): PolicyHandle
  /** Runs `work` in one transaction under `capability` (see `Keyhole.run`). */
  run<T>(capability: Capability, work: (db: PolicyHandle) => Promise<T>): Promise<T>
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error('keyhole: the work failed')
}

/**
 * A queryable that refuses once `open()` says false: the handle must not reach a released client,
 * which by then serves someone else.
 */
function whileOpen(queryable: SessionQueryable, open: () => boolean): SessionQueryable {
  return {
    query: (query, values) =>
      open()
        ? queryable.query(query, values)
        : Promise.reject(new Error('keyhole: the work ended; run queries inside it')),
  }
}

/**
 * 'guard' mode: one client, one plain transaction (no capability to set: the statements carry the
 * guard). Only keyhole's generated statements run on it, so nothing needs resetting; a client
 * whose ROLLBACK failed is destroyed.
 */
export async function guardTransaction<T>(
  database: ResolvedDatabase,
  work: (db: SessionQueryable) => Promise<T>,
  counters: MetricCounters = uncounted,
): Promise<T> {
  let client: SessionClient
  try {
    client = await database.pool.connect()
  } catch (error) {
    throw new ServiceUnavailable({ cause: error })
  }
  let open = true
  try {
    await client.query('BEGIN')
    const value = await work(whileOpen(client as SessionQueryable, () => open))
    open = false
    const commit = await client.query('COMMIT')
    // A statement's failure that work() caught leaves the transaction aborted: COMMIT answers
    // ROLLBACK.
    if ((commit as { command?: unknown }).command !== 'COMMIT') {
      throw new Error('keyhole: the transaction was rolled back')
    }
    client.release()
    return value
  } catch (error) {
    open = false
    let failed: Error | undefined = toError(error)
    try {
      await client.query('ROLLBACK')
      failed = undefined
    } catch {
      // The connection is broken: destroy it.
      counters.connectionsDestroyed++
    }
    client.release(failed)
    throw error
  }
}

/** @param counters incremented by its statements, resets and destroyed connections */
export function createDatabaseRunner(
  database: ResolvedDatabase,
  counters: MetricCounters = uncounted,
): DatabaseRunner {
  const sessions =
    database.mode === 'rls'
      ? createSessionFactory({
          pool: database.pool,
          signingKey: database.signingKey as string | Uint8Array,
          prepared: database.prepared,
          counters,
        })
      : undefined
  const bind = (
    queryable: Queryable,
    capability: Capability,
    transaction?: 'request' | 'statement',
  ) =>
    bindPolicies(database.policies, queryable, capability, {
      prepared: database.prepared,
      mode: database.mode,
      transaction,
      counters: counters.statements,
      dataKeys: database.dataKeys,
    })
  return Object.freeze({
    database,
    sessions,
    bind,
    async run<T>(capability: Capability, work: (db: PolicyHandle) => Promise<T>): Promise<T> {
      // Bound once before any connection: a policy naming a role outside the capability's
      // hierarchy throws here, not on a connection it would then destroy.
      bind(database.pool, capability)
      const run = (queryable: SessionQueryable) => work(bind(queryable, capability))
      return sessions === undefined
        ? guardTransaction(database, run, counters)
        : sessions.withCapability(capability, run)
    },
  })
}
