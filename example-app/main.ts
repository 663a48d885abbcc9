/**
 * `npm run example`: the forum, runnable with one command (`-- --express`: the same forum on
 * Express, through `keyhole/express`).
 *
 * Production has two steps:
 * - `npm run example -- setup` (KEYHOLE_ADMIN_URL, KEYHOLE_MIGRATION_PASSWORD,
 *   KEYHOLE_RUNTIME_PASSWORD, KEYHOLE_SIGNING_KEY): creates or repairs the roles and their grants,
 *   runs keyhole's and the forum's migrations and the policies as the migration role, prints what it
 *   created and every repair with its finding code, and exits.
 * - `npm run example` with DATABASE_URL naming the runtime role, KEYHOLE_SIGNING_KEY and
 *   KEYHOLE_DATA_KEY (the invite codes' key): serves as that role, changing nothing; the start-up
 *   checks refuse to start on any finding.
 *
 * Development: with no DATABASE_URL it starts an embedded PostgreSQL whose data lives in
 * example-app/.data/ (git-ignored; DATA_DIR moves it; `--fresh` deletes it first); with no
 * DATABASE_URL, or one whose role may create roles, the process runs the setup step itself at every
 * start and says so in its log (warn). Without KEYHOLE_DATA_KEY the embedded forum encrypts the
 * invite codes with a key kept beside its data (data-key.ts) and prints a line saying so. SIGTERM/SIGINT stop accepting, let in-flight requests
 * finish, close the pool, stop the embedded server and exit 0.
 */
import { rm } from 'node:fs/promises'
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/embedded-postgres.ts'
import { build } from './app.ts'
import {
  parseConfig,
  parseSetupConfig,
  type ConfigError,
  type ExampleConfig,
  type SetupConfig,
} from './config.ts'
import { dataKeys, type DataKeys } from 'keyhole'
import { developmentDataKey, developmentDataKeyLine } from './data-key.ts'
import { canCreateRoles, setupDatabase, type DatabaseChoice } from './database.ts'
import { devAdminToken } from './tokens.ts'

/** How long a graceful shutdown may take before the process gives up and exits 1. */
const SHUTDOWN_TIMEOUT_MS = 10_000

function fail(message: string): never {
  process.stderr.write(`keyhole example: ${message}\n`)
  process.exit(1)
}

/** The first line of an error's message: pg's and keyhole's messages carry no secret. */
const firstLine = (error: unknown) => String((error as Error).message).split('\n')[0]

if (process.argv[2] === 'setup') {
  let setupConfig: SetupConfig
  try {
    setupConfig = parseSetupConfig(process.env)
  } catch (error) {
    fail((error as ConfigError).message)
  }
  try {
    const report = await setupDatabase(setupConfig.adminUrl, setupConfig)
    const lines = [
      ...report.created.map((what) => `created ${what}`),
      ...report.repairs.map((repair) => `repaired ${repair.code}: ${repair.message}`),
      ...(report.repairs.length === 0 ? ['no repairs: the database was as setup leaves it'] : []),
      'keyhole example setup: done',
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
    process.exit(0)
  } catch (error) {
    fail(`setup failed: ${firstLine(error)}`)
  }
}

let config: ExampleConfig
try {
  config = parseConfig(process.env)
} catch (error) {
  // parseConfig throws only ConfigError, whose message names the variable and never its value.
  fail((error as ConfigError).message)
}

let embedded: RunningPostgres | undefined
if (config.databaseUrl === undefined) {
  if (process.argv.includes('--fresh')) await rm(config.dataDir, { recursive: true, force: true })
  embedded = await startEmbeddedPostgres({ dataDir: config.dataDir })
}

/** What shutdown needs of either server. */
interface Running {
  log(message: string, fields: Record<string, unknown>): void
  /** Stops accepting, waits for in-flight requests, stops the monitor, ends the pool. */
  close(): Promise<void>
}

/** The serve step when DATABASE_URL names a role that cannot create roles; else development. */
async function database(url: string): Promise<DatabaseChoice> {
  if (await canCreateRoles(url)) return { databaseUrl: url }
  if (config.signingKey === undefined) {
    fail(
      'invalid configuration: KEYHOLE_SIGNING_KEY must be set when DATABASE_URL names the runtime role',
    )
  }
  return { runtime: { url, signingKey: config.signingKey } }
}

const settings = {
  jwtSecret: config.jwtSecret,
  jwtIssuer: config.jwtIssuer,
  jwtAudience: config.jwtAudience,
  monitorIntervalMs: config.monitorIntervalMs,
  retentionDays: config.retentionDays,
}

/**
 * The keys of the invite codes: KEYHOLE_DATA_KEY, or with the embedded PostgreSQL a development key
 * kept beside its data (and a line saying so, never the key).
 */
async function dataKeysOf(): Promise<DataKeys> {
  if (config.dataKey !== undefined) return dataKeys({ current: config.dataKey })
  if (embedded === undefined) {
    fail(
      'invalid configuration: KEYHOLE_DATA_KEY must be set when DATABASE_URL is set (only the embedded PostgreSQL keeps a development key)',
    )
  }
  const kept = await developmentDataKey(config.dataDir)
  process.stdout.write(`${developmentDataKeyLine(kept)}\n`)
  return dataKeys({ current: kept.key })
}

async function start(): Promise<Running> {
  const options = {
    ...settings,
    ...(embedded === undefined
      ? await database(config.databaseUrl as string)
      : { databaseUrl: embedded.url }),
    dataKeys: await dataKeysOf(),
  }
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
  fail(`could not start: ${String((error as Error).message)}`)
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
