/**
 * The database checks around a server's life: `assertDatabaseSecure` before it serves (it refuses
 * to start with the report), then the monitor, which re-runs them and tells the adapter to answer
 * 503 (and, with `onFinding: 'close'`, to close) until a later run passes.
 */
import { assertDatabaseSecure, checkDatabase } from '../db/check-database.ts'
import type { CheckDatabaseOptions } from '../db/check-database.ts'
import { startMonitor, type DatabaseMonitor, type MonitorLogger } from '../db/monitor.ts'
import { InsecureDatabase, type DatabaseFinding } from '../errors.ts'
import { callHook, publishFindings, type FindingEvent, type FindingSource } from '../events.ts'
import type { MetricCounters } from '../metrics.ts'
import type { MonitorSettings, ResolvedDatabase } from './adapter-options.ts'

export interface DatabaseHealthOptions {
  readonly database: ResolvedDatabase
  readonly checks: CheckDatabaseOptions
  readonly monitor: Required<MonitorSettings> | undefined
  /** The monitor's logger, and `warn` for a check the options waive and a failed hook. */
  readonly logger: MonitorLogger & { warn(details: object, message: string): void }
  /** Closes the server (for `onFinding: 'close'`). */
  readonly close: () => unknown
  /** The `onFinding` option: each finding (start-up and monitor) and each recovery. */
  readonly onFinding?: ((event: FindingEvent) => unknown) | undefined
  /** The runtime's counters: the monitor's runs and findings. */
  readonly counters?: MetricCounters | undefined
}

const RECOVERED: FindingEvent = Object.freeze({ type: 'recovered', source: 'monitor' })

/**
 * Runs the start-up checks, then starts the monitor (when configured).
 * @throws InsecureDatabase `KH_INSECURE_DATABASE` listing every finding.
 */
export async function startDatabaseHealth(
  options: DatabaseHealthOptions,
): Promise<DatabaseMonitor | undefined> {
  const { database, checks, monitor } = options
  const notify = (event: FindingEvent) =>
    callHook(options.onFinding, event, (error) =>
      options.logger.warn({ err: error }, 'keyhole: the onFinding hook failed'),
    )
  const found = (source: FindingSource, findings: readonly DatabaseFinding[]) => {
    publishFindings(source, findings)
    for (const finding of findings) notify(Object.freeze({ type: 'finding', source, finding }))
  }
  try {
    await assertDatabaseSecure(database.pool, checks)
  } catch (error) {
    if (error instanceof InsecureDatabase) found('startup', error.findings)
    throw error
  }
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
    counters: options.counters,
    onFinding: (findings) => {
      // The monitor itself publishes its findings; the hook is the adapter's.
      for (const finding of findings)
        notify(Object.freeze({ type: 'finding', source: 'monitor', finding }))
      if (monitor.onFinding === 'close') void options.close()
    },
    onRecovered: () => notify(RECOVERED),
  })
}
