/**
 * The retention job: deletes the discussion threads older than the retention period, in every
 * group (their posts go with them: `ON DELETE CASCADE`). Nobody's capability spans every group, so
 * the job runs in keyhole's system context, granted `read` and `delete` on `discussion_threads`
 * only (declared in policies.ts), and each run is published on `keyhole:system` with its row
 * counts. `build()` runs it on a timer when `retentionDays` is set (KEYHOLE_RETENTION_DAYS).
 */
import { op, type Keyhole } from 'keyhole'

/** The reason every run gives: logged with each use of the system context. */
export const RETENTION_REASON = 'retention: threads past the retention period'

const DAY_MS = 24 * 60 * 60 * 1000

/** How often `build()` runs the job when KEYHOLE_RETENTION_DAYS is set: hourly. */
export const RETENTION_INTERVAL_MS = 60 * 60 * 1000

/**
 * Deletes every thread created more than `retentionDays` days before `now`, across groups, in one
 * transaction; resolves to the number deleted. It counts them first: a guarded delete that matches
 * no row answers `KH_NOT_FOUND` (and would roll back), as it does in a request.
 *
 * ```sql
 * SELECT count(*) FROM "discussion_threads" AS "t" WHERE … "t"."created_at" < $1
 * DELETE FROM "discussion_threads" AS "t" WHERE … "t"."created_at" < $1
 * ```
 */
export async function deleteExpiredThreads(
  keyhole: Keyhole,
  retentionDays: number,
  now: Date = new Date(),
): Promise<number> {
  const cutoff = new Date(now.getTime() - retentionDays * DAY_MS)
  const { count } = await keyhole.runAsSystem(
    { reason: RETENTION_REASON, tables: ['discussion_threads'], operations: ['read', 'delete'] },
    async (db) => {
      const expired = { created_at: op({ lt: cutoff }) }
      if ((await db.count('discussion_threads', expired)) === 0) return { count: 0 }
      return db.delete('discussion_threads', expired)
    },
  )
  return count
}

/** What a failed run is logged through (pino's shape). */
export interface RetentionLogger {
  error(fields: object, message: string): void
}

/**
 * Runs the job every `intervalMs` (default hourly) when `retentionDays` is set; the timer does not
 * keep the process alive, and a tick while a run is still going is skipped. A failed run is logged at error with its code and the first line of its
 * message (its outcome is on `keyhole:system` too), and the next runs on. Returns the stop.
 */
export function scheduleRetention(
  keyhole: Keyhole,
  options: {
    readonly retentionDays?: number | undefined
    readonly intervalMs?: number | undefined
  },
  log: RetentionLogger,
): () => void {
  const { retentionDays, intervalMs = RETENTION_INTERVAL_MS } = options
  if (retentionDays === undefined) return () => {}
  let running = false
  const timer = setInterval(() => {
    // One run at a time: a tick while the previous run is still in its transaction is skipped.
    if (running) return
    running = true
    deleteExpiredThreads(keyhole, retentionDays)
      .catch((error: unknown) => {
        const { code, message } = error as { code?: unknown; message?: unknown }
        log.error({ code, error: String(message).split('\n')[0] }, 'retention job failed')
      })
      .finally(() => (running = false))
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
