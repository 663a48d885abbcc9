/**
 * `npm run example`: the forum, runnable with one command (`-- --express`: the same forum on
 * Express, through `keyhole/express`).
 *
 * With no DATABASE_URL it starts an embedded PostgreSQL whose data lives in example-app/.data/
 * (git-ignored; DATA_DIR moves it; `--fresh` deletes it first). Either way `build()` runs keyhole's setup and the
 * migrations as the migration role and serves as the restricted runtime role, start-up checks on.
 * SIGTERM/SIGINT stop accepting, let in-flight requests finish, close the pool, stop the embedded
 * server and exit 0.
 */
import { rm } from 'node:fs/promises'
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/embedded-postgres.ts'
import { build } from './app.ts'
import { parseConfig, type ConfigError, type ExampleConfig } from './config.ts'
import { devAdminToken } from './tokens.ts'

/** How long a graceful shutdown may take before the process gives up and exits 1. */
const SHUTDOWN_TIMEOUT_MS = 10_000

function fail(message: string): never {
  process.stderr.write(`keyhole example: ${message}\n`)
  process.exit(1)
}

let config: ExampleConfig
try {
  config = parseConfig(process.env)
} catch (error) {
  // parseConfig throws only ConfigError, whose message names the variable and never its value.
  fail((error as ConfigError).message)
}

let embedded: RunningPostgres | undefined
let databaseUrl = config.databaseUrl
if (databaseUrl === undefined) {
  if (process.argv.includes('--fresh')) await rm(config.dataDir, { recursive: true, force: true })
  embedded = await startEmbeddedPostgres({ dataDir: config.dataDir })
  databaseUrl = embedded.url
}

/** What shutdown needs of either server. */
interface Running {
  log(message: string, fields: Record<string, unknown>): void
  /** Stops accepting, waits for in-flight requests, stops the monitor, ends the pool. */
  close(): Promise<void>
}

const options = {
  databaseUrl,
  jwtSecret: config.jwtSecret,
  jwtIssuer: config.jwtIssuer,
  jwtAudience: config.jwtAudience,
  monitorIntervalMs: config.monitorIntervalMs,
}

async function start(): Promise<Running> {
  if (process.argv.includes('--express')) {
    // Loaded only when asked for: the Fastify forum never loads Express.
    const { buildExpress } = await import('./express/app.ts')
    const forum = await buildExpress(options)
    const url = await forum.listen(config.port, config.host)
    const log = (message: string, fields: Record<string, unknown>) =>
      process.stdout.write(`${JSON.stringify({ level: 'info', ...fields, msg: message })}\n`)
    log('keyhole example forum (Express) listening', { url })
    return { log, close: () => forum.close() }
  }
  const app = await build({ ...options, logger: true })
  await app.listen({ port: config.port, host: config.host })
  return { log: (message, fields) => app.log.info(fields, message), close: () => app.close() }
}

let running: Running
try {
  running = await start()
} catch (error) {
  await embedded?.stop()
  // A start-up refusal (an insecure database, an unreachable server) is reported by its message:
  // keyhole's messages never carry secrets, and a stack would bury the report.
  fail(`could not start: ${(error as Error).message}`)
}

if (config.jwtSecretGenerated) {
  // The one deliberate exception to "tokens never reach a log": JWT_SECRET was not set, so nobody
  // else could mint a token for this run's random secret.
  const token = await devAdminToken(config)
  process.stdout.write(
    `\nJWT_SECRET is not set: this run signs tokens with a random secret.\n` +
      `An admin token for trying the forum out (valid 12 hours, this run only):\n\n` +
      `  export TOKEN=${token}\n\n`,
  )
}

let stopping = false
async function shutdown(signal: string): Promise<void> {
  if (stopping) return
  stopping = true
  running.log('shutting down', { signal })
  const timer = setTimeout(() => fail('shutdown took too long'), SHUTDOWN_TIMEOUT_MS)
  timer.unref()
  await running.close()
  await embedded?.stop()
  clearTimeout(timer)
  process.exit(0)
}
// embedded-postgres (through async-exit-hook) stops its servers on these signals and exits on its
// own, racing the graceful shutdown below (the pool then sees its server vanish: exit 1). This
// process is the only user of the signals, and shutdown() stops the embedded server itself.
process.removeAllListeners('SIGTERM')
process.removeAllListeners('SIGINT')
process.once('SIGTERM', () => void shutdown('SIGTERM'))
process.once('SIGINT', () => void shutdown('SIGINT'))
