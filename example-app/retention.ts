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

/**
 * Runs the job every `intervalMs` (the timer does not keep the process alive); `stop()` ends it.
 * A failed run is handed to `onError` (the outcome is on `keyhole:system` too); the next runs on.
 */
export function startRetention(
  keyhole: Keyhole,
  options: { readonly retentionDays: number; readonly intervalMs: number },
  onError: (error: unknown) => void,
): { stop(): void } {
  const timer = setInterval(() => {
    deleteExpiredThreads(keyhole, options.retentionDays).catch(onError)
  }, options.intervalMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
