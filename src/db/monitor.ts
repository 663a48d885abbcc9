/**
 * The monitor: re-runs the database checks on an interval so a database that becomes insecure
 * after start-up (a grant, a disabled policy) is noticed. It only keeps the state and calls back;
 * the adapters decide what to do (answer 503 while unhealthy, or close the server).
 */
import { ConfigurationError, InsecureDatabase, type DatabaseFinding } from '../errors.ts'
import { callHook, publishFindings, publishRecovered } from '../events.ts'
import type { MetricCounters } from '../metrics.ts'
import { messageOf } from './checks/context.ts'

/** The part of a pino-like logger the monitor uses. */
export interface MonitorLogger {
  fatal(details: object, message: string): void
  info(details: object, message: string): void
}

export interface MonitorOptions {
  /** Runs the checks; usually `() => checkDatabase(pool, options)`. */
  check: () => Promise<readonly DatabaseFinding[]>
  /**
   * Milliseconds between the end of one run and the start of the next; `0` or `false` turns the
   * interval off (`check()` still works).
   * @default 60000
   */
  intervalMs?: number | false | undefined
  /**
   * Called when a run has findings and the previous run had none or different ones (each is
   * also published on `keyhole:finding`). What it throws, or a promise it returns rejects with,
   * is logged at fatal; the monitor goes on.
   */
  onFinding?: ((findings: readonly DatabaseFinding[]) => unknown) | undefined
  /** Called when a run has no finding after one that had some (published too), as `onFinding`. */
  onRecovered?: (() => unknown) | undefined
  /** Findings are logged at `fatal` on every run that has them. @default console */
  logger?: MonitorLogger | undefined
  /** Counts each run and its findings (see `KeyholeMetrics.monitor`). */
  counters?: Pick<MetricCounters, 'monitorRuns' | 'monitorFindings'> | undefined
}

export interface DatabaseMonitor {
  /** True until a run has findings, and again once a later run has none. */
  readonly healthy: boolean
  /** The last run's findings (frozen; empty when healthy). */
  readonly findings: readonly DatabaseFinding[]
  /** Runs the checks now, or joins the run in progress: runs never overlap. */
  check(): Promise<readonly DatabaseFinding[]>
  /** Stops the interval and waits for a run in progress; no callback fires after it. */
  stop(): Promise<void>
}

const consoleLogger: MonitorLogger = {
  fatal: (_details, message) => console.error(message),
  info: (_details, message) => console.info(message),
}

/** A check that could not run is a finding: the monitor fails closed. */
function checkFailed(error: unknown): DatabaseFinding {
  return Object.freeze({
    code: 'KH_DB_CHECK_FAILED',
    message: `the database checks could not run: ${messageOf(error)}`,
    fix: 'make the database reachable as the runtime role; keyhole stays unavailable until the checks pass',
  })
}

function key(findings: readonly DatabaseFinding[]): string {
  return findings.map((f) => `${f.code}\u0000${f.message}`).join('\u0001')
}

/**
 * Starts re-running `check` every `intervalMs` (the timer is `unref()`ed: it never keeps the
 * process alive). Starts healthy: run the start-up check (`assertDatabaseSecure`) before this.
 *
 * @example
 * ```ts
 * const monitor = startMonitor({
 *   check: () => checkDatabase(pool, checkOptions),
 *   onFinding: () => server.close(),
 *   logger: fastify.log,
 * })
 * ```
 */
export function startMonitor(options: MonitorOptions): DatabaseMonitor {
  const interval = options.intervalMs ?? 60_000
  if (interval !== false && !(Number.isSafeInteger(interval) && interval >= 0)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'Invalid option monitor.intervalMs: must be a non-negative integer or false',
    )
  }
  const logger = options.logger ?? consoleLogger
  const onFinding = options.onFinding
  let findings: readonly DatabaseFinding[] = Object.freeze([])
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let inFlight: Promise<readonly DatabaseFinding[]> | undefined

  // A callback that throws, or returns a promise that rejects, is logged: the monitor goes on.
  const callback = (name: string, fn: (() => unknown) | undefined) =>
    callHook(fn, undefined, (error) =>
      logger.fatal({ err: error }, `keyhole database monitor: the ${name} callback threw`),
    )

  const record = (result: readonly DatabaseFinding[]) => {
    const before = findings
    findings = Object.freeze([...result])
    if (findings.length > 0) {
      logger.fatal(
        { codes: findings.map((f) => f.code) },
        new InsecureDatabase(findings).message.replace('refuses to start', 'refuses to serve'),
      )
      if (key(before) !== key(findings)) {
        publishFindings('monitor', findings)
        callback('onFinding', onFinding && (() => onFinding(findings)))
      }
    } else if (before.length > 0) {
      logger.info({}, 'keyhole database monitor: the database checks pass again')
      publishRecovered()
      callback('onRecovered', options.onRecovered)
    }
  }

  const run = (): Promise<readonly DatabaseFinding[]> => {
    inFlight ??= (async () => {
      let result: readonly DatabaseFinding[]
      try {
        result = await options.check()
      } catch (error) {
        result = [checkFailed(error)]
      }
      const counters = options.counters
      if (counters !== undefined) {
        counters.monitorRuns++
        counters.monitorFindings += result.length
      }
      if (!stopped) record(result)
      return result
    })().finally(() => {
      // Always a later microtask, so never before `inFlight` was assigned.
      inFlight = undefined
    })
    return inFlight
  }

  const schedule = () => {
    if (stopped || interval === false || interval === 0) return
    timer = setTimeout(() => void run().then(schedule), interval)
    timer.unref()
  }
  schedule()

  return {
    get healthy() {
      return findings.length === 0
    },
    get findings() {
      return findings
    },
    check: run,
    async stop() {
      stopped = true
      clearTimeout(timer)
      await inFlight
    },
  }
}
