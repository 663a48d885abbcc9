/**
 * Starts PgBouncer in transaction-pooling mode on a free loopback port in front of the test
 * server, for one role, and stops it at teardown. Returns undefined when no `pgbouncer` binary is
 * on PATH (CI installs the Debian package).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chown, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { delimiter, join } from 'node:path'
import { execFileSync } from 'node:child_process'
import pg from 'pg'
import { freePort } from '../../../dev/free-port.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

export function findPgbouncer(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'pgbouncer')
    if (dir !== '' && existsSync(candidate)) return candidate
  }
  return undefined
}

/** A URL through PgBouncer for `role`, or undefined without the binary. */
export async function startPgbouncer(
  t: Teardown,
  serverUrl: string,
  role: { name: string; password: string },
): Promise<string | undefined> {
  const binary = findPgbouncer()
  if (binary === undefined) return undefined
  const server = new URL(serverUrl)
  const database = server.pathname.slice(1)
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-pgbouncer-'))
  const ini = join(dir, 'pgbouncer.ini')
  const users = join(dir, 'userlist.txt')
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`
  await writeFile(users, `${quote(role.name)} ${quote(role.password)}\n`, { mode: 0o600 })
  await writeFile(
    ini,
    `[databases]
${database} = host=${server.hostname} port=${server.port} dbname=${database}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = plain
auth_file = ${users}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
`,
    { mode: 0o600 },
  )
  const args = [ini]
  // PgBouncer refuses to run as root: hand it to the user the embedded server runs as.
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString())
    for (const f of [dir, ini, users]) await chown(f, uid, uid)
    args.unshift('-u', 'postgres')
  }
  const child = spawn(binary, args, { stdio: 'ignore' })
  t.teardown(() => {
    child.kill('SIGTERM')
  })
  const url = new URL(serverUrl)
  url.port = String(port)
  url.username = encodeURIComponent(role.name)
  url.password = encodeURIComponent(role.password)
  // Wait until it accepts connections.
  for (let attempt = 0; ; attempt++) {
    const c = new pg.Client({ connectionString: url.toString() })
    try {
      await c.connect()
      await c.end()
      return url.toString()
    } catch (error) {
      if (attempt > 50) throw error
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
