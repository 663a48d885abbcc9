/**
 * The database checks around a server's life: `assertDatabaseSecure` before it serves (it refuses
 * to start with the report), then the monitor, which re-runs them and tells the adapter to answer
 * 503 (and, with `onFinding: 'close'`, to close) until a later run passes.
 */
import { assertDatabaseSecure, checkDatabase } from '../db/check-database.ts'
import type { CheckDatabaseOptions } from '../db/check-database.ts'
import { startMonitor, type DatabaseMonitor, type MonitorLogger } from '../db/monitor.ts'
import type { MonitorSettings, ResolvedDatabase } from './adapter-options.ts'

export interface DatabaseHealthOptions {
  readonly database: ResolvedDatabase
  readonly checks: CheckDatabaseOptions
  readonly monitor: Required<MonitorSettings> | undefined
  readonly logger: MonitorLogger
  /** Closes the server (for `onFinding: 'close'`). */
  readonly close: () => unknown
}

/**
 * Runs the start-up checks, then starts the monitor (when configured).
 * @throws InsecureDatabase `KH_INSECURE_DATABASE` listing every finding.
 */
export async function startDatabaseHealth(
  options: DatabaseHealthOptions,
): Promise<DatabaseMonitor | undefined> {
  const { database, checks, monitor } = options
  await assertDatabaseSecure(database.pool, checks)
  if (monitor === undefined) return undefined
  return startMonitor({
    check: () => checkDatabase(database.pool, checks),
    intervalMs: monitor.intervalMs,
    logger: options.logger,
    onFinding: () => {
      if (monitor.onFinding === 'close') void options.close()
    },
  })
}
