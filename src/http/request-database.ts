/**
 * One request's database work in 'rls' mode: the transaction opens on the first statement (a
 * request that touches no data costs no round trip), every statement of the request runs in it,
 * and the adapter ends it once, when the response is decided: COMMIT on success, ROLLBACK on
 * failure. The session releases the client in every case (`release(err)` on failure), so nothing
 * of this request's capability survives on the pooled connection.
 */
import type { Capability } from '../capability/capability.ts'
import type { SessionFactory, SessionQueryable } from '../db/session.ts'

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
