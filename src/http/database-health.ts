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
  /** The monitor's logger, and `warn` for a check the options waive. */
  readonly logger: MonitorLogger & { warn(details: object, message: string): void }
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
  // A waived check is said at every start, never silent.
  if (checks.tls === 'waived') {
    options.logger.warn(
      { waived: 'tls' },
      "keyhole: checks.tls is 'waived': the connection to the database is not checked for encryption (KH_DB_NOT_ENCRYPTED)",
    )
  }
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
