/**
 * The logger option of adapters without a logger of their own (Express): a pino-shaped object,
 * checked when the adapter is created. Without one, fatal, error and warn go to stderr as one JSON
 * line each, pino's shape (`level`, `time`, `msg` and the details); info and debug are dropped. An error is written as its name, code and message
 * (no stack, no cause, no enumerable extras): keyhole's messages never carry a token or a secret,
 * and this keeps whatever a library hung on its error out of the log.
 */
import { ConfigurationError } from '../errors.ts'

/** The pino-shaped logger keyhole writes to: `logger.error({ err }, 'message')`. */
export interface KeyholeLogger {
  fatal(details: object, message: string): void
  error(details: object, message: string): void
  warn(details: object, message: string): void
  info(details: object, message: string): void
  debug(details: object, message: string): void
}

const levels = ['fatal', 'error', 'warn', 'info', 'debug'] as const

function describe(value: unknown): unknown {
  if (!(value instanceof Error)) return value
  const code = (value as { code?: unknown }).code
  return { type: value.name, ...(typeof code === 'string' ? { code } : {}), message: value.message }
}

function line(level: string, details: object, message: string): string {
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(details)) fields[key] = describe(value)
  return `${JSON.stringify({ level, time: Date.now(), ...fields, msg: message })}\n`
}

/** Writes to `write` (default: stderr). */
export function stderrLogger(
  write: (text: string) => unknown = (text) => process.stderr.write(text),
): KeyholeLogger {
  const to = (level: string) => (details: object, message: string) =>
    void write(line(level, details, message))
  const drop = () => {}
  return Object.freeze({
    fatal: to('fatal'),
    error: to('error'),
    warn: to('warn'),
    info: drop,
    debug: drop,
  })
}

/**
 * The `logger` option: the given logger, or {@link stderrLogger} when there is none.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the missing method
 */
export function resolveLogger(logger: unknown): KeyholeLogger {
  if (logger === undefined) return stderrLogger()
  if (typeof logger !== 'object' || logger === null) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'Invalid option logger: must be a pino-shaped logger object',
    )
  }
  const missing = levels.find(
    (level) => typeof (logger as Record<string, unknown>)[level] !== 'function',
  )
  if (missing !== undefined) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `Invalid option logger.${missing}: must be a function`,
    )
  }
  return logger as KeyholeLogger
}
