/**
 * `npm run example` as a process: it starts on a free port (embedded PostgreSQL when DATABASE_URL
 * is unset), answers /health and an authenticated request, and exits 0 on SIGTERM or SIGINT; in
 * this development shape it logs that it holds privileged credentials, and what setup created and
 * repaired. A bad setting or an unreachable database is one line on stderr and exit status 1. The
 * production shape (setup step, serve step) is production-shape.test.ts.
 */
import { uncoveredChildEnv } from '../helpers/child-env.ts'
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../../dev/free-port.ts'
import { signToken } from '../../example-app/tokens.ts'

const root = new URL('../../', import.meta.url)

/** What `npm run example` runs. The tests run it directly: npm and the shell it starts do not pass
 * SIGTERM on to node, so signalling npm would test npm and leave the forum running, orphaned. */
const command = ['--conditions=keyhole-source', '--import', 'tsx', 'example-app/main.ts']

/** How long a start (embedded PostgreSQL, setup, migrations) or a shutdown may take. */
const START_MS = 60_000
const STOP_MS = 15_000

interface Running {
  child: ChildProcess
  output(): { stdout: string; stderr: string }
  exited: Promise<number | null>
}

function start(env: Record<string, string>, args: string[] = []): Running {
  const base = { ...process.env }
  delete base.DATABASE_URL
  delete base.JWT_SECRET
  delete base.PORT
  const child = spawn(process.execPath, [...command, ...args], {
    cwd: root,
    env: uncoveredChildEnv({ ...base, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, output: () => ({ stdout, stderr }), exited }
}

/** Polls /health until it answers 200, or the process exits, or START_MS pass. */
async function healthy(port: number, running: Running): Promise<boolean> {
  let exited = false
  void running.exited.then(() => (exited = true))
  for (let attempt = 0; attempt < START_MS / 200 && !exited; attempt++) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.status === 200,
      () => false,
    )
    if (ok) return true
    await sleep(200)
  }
  return false
}

/** The exit status, or 'still running' (then killed) when it takes longer than STOP_MS. */
async function exitStatus(running: Running): Promise<number | null | 'still running'> {
  const timer = sleep(STOP_MS, 'still running' as const, { ref: false })
  const status = await Promise.race([running.exited, timer])
  if (status === 'still running') running.child.kill('SIGKILL')
  return status
}

/** The child's stderr, for a failure message: a test that fails says why the process did. */
function stderrOf(running: Running): string {
  return `stderr: ${running.output().stderr.slice(-2000)}`
}

async function dataDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-example-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('npm run example runs the command these tests run', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8'))
  t.equal(pkg.scripts.example, `node ${command.join(' ')}`)
})

const forums: [string, string[]][] = [
  ['the Fastify forum', ['--fresh']],
  ['the Express forum (--express)', ['--fresh', '--express']],
]
for (const [forum, args] of forums) {
  t.test(
    `no DATABASE_URL, ${forum}: embedded PostgreSQL, serves, exits 0 on SIGTERM`,
    async (t) => {
      const port = await freePort()
      const secret = 'a-test-secret-of-at-least-32-bytes!'
      const dir = await dataDir(t)
      const running = start({ PORT: String(port), JWT_SECRET: secret, DATA_DIR: dir }, args)
      t.teardown(() => running.child.kill('SIGKILL'))
      t.ok(await healthy(port, running), 'GET /health answers 200', {
        diagnostic: true,
        stderr: stderrOf(running),
      })

      const token = await signToken(
        { jwtSecret: secret, jwtIssuer: 'keyhole-example', jwtAudience: 'forum' },
        {
          sub: 'ops',
          permissions: [{ group: '00000000-0000-4000-8000-000000000000', role: 'admin' }],
        },
      )
      const created = await fetch(`http://127.0.0.1:${port}/groups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'from the process test' }),
      })
      t.equal(created.status, 201, 'an authenticated request succeeds')
      t.match(await created.json(), {
        name: 'from the process test',
        inviteCode: /^[A-Za-z0-9_-]{16}$/,
      })
      const refused = await fetch(`http://127.0.0.1:${port}/groups`, { method: 'POST' })
      t.equal(refused.status, 401, 'no token: 401')

      running.child.kill('SIGTERM')
      t.equal(await exitStatus(running), 0, 'exit status 0 after SIGTERM', {
        stderr: stderrOf(running),
      })
      const { stdout, stderr } = running.output()
      t.notOk(stdout.includes(token) || stderr.includes(token), 'the token never reaches the log')
      t.notOk(stdout.includes(secret) || stderr.includes(secret), 'nor does the secret')
      t.notMatch(stdout, /export TOKEN=/, 'no development token when JWT_SECRET is set')
      const keyFile = join(dir, 'data-key')
      t.match(
        stdout,
        `KEYHOLE_DATA_KEY is not set: the invite codes are encrypted with the development key generated now and kept in ${keyFile}`,
        'development: a data key kept beside the embedded data, and a line saying so',
      )
      t.equal((await stat(keyFile)).mode & 0o777, 0o600, 'readable by its owner only')
      const key = (await readFile(keyFile, 'utf8')).trim()
      t.notOk(stdout.includes(key) || stderr.includes(key), 'the data key never reaches the log')
      t.match(
        stdout,
        /"level":("warn"|40),.*"msg":"the serving process holds privileged database credentials/,
        'development: a warning that the process holds privileged credentials',
      )
      t.match(stdout, /"msg":"created role \\"forum_app\\""/, 'what setup created, logged')
      t.match(
        stdout,
        /"code":"KH_DB_DATABASE_TEMP".*"msg":"repaired KH_DB_DATABASE_TEMP: /,
        'each repair logged with its code',
      )
    },
  )
}

t.test('no JWT_SECRET: prints a working admin token; exits 0 on SIGINT', async (t) => {
  const port = await freePort()
  const running = start({ PORT: String(port), DATA_DIR: await dataDir(t) })
  t.teardown(() => running.child.kill('SIGKILL'))
  t.ok(await healthy(port, running), 'GET /health answers 200', {
    diagnostic: true,
    stderr: stderrOf(running),
  })
  const token = /export TOKEN=(\S+)/.exec(running.output().stdout)?.[1]
  t.ok(token, 'a development admin token is printed')
  const created = await fetch(`http://127.0.0.1:${port}/groups`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'with the printed token' }),
  })
  t.equal(created.status, 201, 'the printed token is an admin token')
  running.child.kill('SIGINT')
  t.equal(await exitStatus(running), 0, 'exit status 0 after SIGINT', { stderr: stderrOf(running) })
})

t.test('a bad setting: one line on stderr, exit status 1', async (t) => {
  const running = start({ PORT: 'eighty', JWT_SECRET: 'short' })
  t.equal(await exitStatus(running), 1, 'exit status 1', { stderr: stderrOf(running) })
  const { stderr } = running.output()
  t.match(
    stderr,
    /^keyhole example: invalid configuration: PORT must be a whole number; JWT_SECRET/,
  )
  t.equal(stderr.trim().split('\n').length, 1, 'one line, no stack')
  t.notOk(stderr.includes('short'), 'the value is not echoed')
})

t.test('an unreachable database: one line on stderr, exit status 1', async (t) => {
  const port = await freePort()
  const running = start({
    PORT: String(await freePort()),
    JWT_SECRET: 'a-test-secret-of-at-least-32-bytes!',
    DATABASE_URL: `postgres://nobody:secret-password@127.0.0.1:${port}/forum`,
  })
  t.equal(await exitStatus(running), 1, 'exit status 1', { stderr: stderrOf(running) })
  const { stderr } = running.output()
  t.match(stderr, /^keyhole example: could not start: /)
  t.notOk(stderr.includes('secret-password'), 'the database password is not echoed')
})
