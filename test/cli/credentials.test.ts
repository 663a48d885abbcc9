/**
 * Credentials come from the environment only (issue 15): no `keyhole` command writes a password,
 * the signing key, the token secret or the administrator's URL to stdout, stderr or a file, except
 * the one documented output, `keyhole setup --generate-key`, which prints the new signing key once
 * on stdout. Each command runs as the shell runs it, as a child process in a fresh working
 * directory, with known secrets in its environment; its stdout, its stderr and every file of the
 * working directory are searched for each secret (as given, as base64 and hex of its bytes, and
 * URL-encoded), on success and on failure.
 *
 * `setup` refuses a role password shorter than 12 characters with a clear error: below, and in
 * process in test/db/setup.test.ts ('short password').
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { freePort } from '../../dev/free-port.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { uncoveredChildEnv } from '../helpers/child-env.ts'

const db = await createTestDatabase(t)
const bin = fileURLToPath(new URL('../../bin/keyhole.ts', import.meta.url))
// Resolved here: the child runs in a directory with no node_modules.
const tsx = import.meta.resolve('tsx')
const policiesModule = fileURLToPath(new URL('./helpers/policies.js', import.meta.url))
const migrator = { name: `${db.prefix}_migrator`, password: randomBytes(18).toString('base64url') }
const runtime = { name: `${db.prefix}_runtime`, password: randomBytes(18).toString('base64url') }
const signingKey = randomBytes(32).toString('base64url')
const tokenSecret = randomBytes(32).toString('base64url')
const adminPassword = decodeURIComponent(new URL(db.url).password)

const secrets: Record<string, string> = {
  'the migration password': migrator.password,
  'the runtime password': runtime.password,
  'the signing key': signingKey,
  'the token secret': tokenSecret,
  "the administrator's password": adminPassword,
}

/** Every spelling of a secret a careless log line could use. */
function spellings(secret: string): string[] {
  const bytes = Buffer.from(secret, 'base64url')
  return [
    secret,
    encodeURIComponent(secret),
    bytes.toString('base64'),
    bytes.toString('hex'),
    Buffer.from(secret).toString('base64'),
  ]
}

const env = {
  KEYHOLE_ADMIN_URL: db.url,
  KEYHOLE_MIGRATION_PASSWORD: migrator.password,
  KEYHOLE_RUNTIME_PASSWORD: runtime.password,
  KEYHOLE_SIGNING_KEY: signingKey,
  KEYHOLE_MIGRATION_URL: db.urlAs(migrator.name, migrator.password),
  KEYHOLE_RUNTIME_URL: db.urlAs(runtime.name, runtime.password),
  KEYHOLE_TOKEN_SECRET: tokenSecret,
}

/** Every file under `dir`, with its text. */
async function filesOf(dir: string): Promise<{ path: string; text: string }[]> {
  const found: { path: string; text: string }[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    found.push({ path, text: await readFile(path, 'latin1') })
  }
  return found
}

interface Run {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
  /** Files in the working directory after the run that were not there before. */
  readonly written: { path: string; text: string }[]
}

/** Runs `keyhole …` as the shell does, in a fresh working directory. */
async function keyhole(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const cwd = await mkdtemp(join(tmpdir(), 'keyhole-credentials-'))
  t.teardown(() => rm(cwd, { recursive: true, force: true }))
  await mkdir(join(cwd, 'migrations'))
  await writeFile(
    join(cwd, 'migrations', '000001.do.notes.sql'),
    'CREATE TABLE app.notes (id serial PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL);',
  )
  const before = new Set((await filesOf(cwd)).map((f) => f.path))
  const child = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      ['--import', tsx, bin, ...args],
      { cwd, env: uncoveredChildEnv({ ...process.env, ...env, ...extraEnv }) },
      (error, stdout, stderr) =>
        resolve({ status: error ? Number(error.code) : 0, stdout, stderr }),
    ),
  )
  const written = (await filesOf(cwd)).filter((f) => !before.has(f.path))
  return { ...child, written }
}

/** Asserts that no secret, in any spelling, is in the run's output or the files it wrote. */
function assertNoSecret(t: Test, run: Run, allowedOnStdout?: string) {
  for (const [name, secret] of Object.entries(secrets)) {
    if (secret === allowedOnStdout) continue
    for (const spelling of spellings(secret)) {
      t.notOk(run.stdout.includes(spelling), `${name} is not on stdout`)
      t.notOk(run.stderr.includes(spelling), `${name} is not on stderr`)
      for (const file of run.written) {
        t.notOk(file.text.includes(spelling), `${name} is not in ${file.path}`)
      }
    }
  }
}

const roles = ['--migration-role', migrator.name, '--runtime-role', runtime.name, '--schema', 'app']
const refused = `postgres://nobody:${adminPassword}@127.0.0.1:${await freePort()}/none`

const commands: { name: string; args: string[]; env?: Record<string, string>; status: number }[] = [
  { name: 'setup (the key from KEYHOLE_SIGNING_KEY)', args: ['setup', ...roles], status: 0 },
  { name: 'setup again (no repairs)', args: ['setup', ...roles], status: 0 },
  {
    name: 'setup --keep-key',
    args: ['setup', ...roles, '--keep-key'],
    env: { KEYHOLE_SIGNING_KEY: '' },
    status: 0,
  },
  {
    name: 'migrate with the policies',
    args: ['migrate', '--migrations', 'migrations', '--policies', policiesModule].concat([
      '--runtime-role',
      runtime.name,
    ]),
    status: 0,
  },
  {
    name: 'policies',
    args: ['policies', '--policies', policiesModule, '--runtime-role', runtime.name],
    status: 0,
  },
  {
    name: 'check',
    args: ['check', '--policies', policiesModule, '--migration-role', migrator.name],
    status: 0,
  },
  {
    name: 'token',
    args: ['token', '--subject', 'alice', '--permission', 'g1:member'],
    status: 0,
  },
  // Failures: the error names what failed, never the secret.
  {
    name: 'setup, the administrator refused',
    args: ['setup', ...roles],
    env: { KEYHOLE_ADMIN_URL: refused },
    status: 1,
  },
  {
    name: 'migrate, the database unreachable',
    args: ['migrate', '--migrations', 'migrations'],
    env: { KEYHOLE_MIGRATION_URL: refused },
    status: 1,
  },
  {
    name: 'check, the database unreachable',
    args: ['check', '--policies', policiesModule],
    env: { KEYHOLE_RUNTIME_URL: refused },
    status: 1,
  },
  {
    name: 'setup, a wrong password for the administrator',
    args: ['setup', ...roles],
    env: { KEYHOLE_ADMIN_URL: db.urlAs(migrator.name, runtime.password) },
    status: 1,
  },
  {
    name: 'token, a short secret',
    args: ['token', '--subject', 'alice'],
    env: { KEYHOLE_TOKEN_SECRET: tokenSecret.slice(0, 20) },
    status: 1,
  },
]

for (const c of commands) {
  t.test(`keyhole ${c.name}: no secret on stdout, stderr or in a file`, async (t) => {
    const run = await keyhole(c.args, c.env)
    t.equal(run.status, c.status, run.stderr)
    assertNoSecret(t, run)
  })
}

t.test('setup --generate-key: the new key once on stdout, nowhere else', async (t) => {
  const run = await keyhole(['setup', ...roles, '--generate-key'], { KEYHOLE_SIGNING_KEY: '' })
  t.equal(run.status, 0, run.stderr)
  t.match(run.stdout, /^[A-Za-z0-9_-]{43}\n$/, 'the key alone, on one line')
  const generated = run.stdout.trim()
  for (const spelling of spellings(generated)) {
    t.notOk(run.stderr.includes(spelling), 'the new key is not on stderr')
    for (const file of run.written) t.notOk(file.text.includes(spelling), 'nor in a file')
  }
  assertNoSecret(t, run)
})

t.test(
  'setup refuses a role password shorter than 12 characters, without echoing it',
  async (t) => {
    for (const variable of ['KEYHOLE_MIGRATION_PASSWORD', 'KEYHOLE_RUNTIME_PASSWORD']) {
      const short = 'Sh0rt-pw-11'
      const run = await keyhole(['setup', ...roles], { [variable]: short })
      t.equal(run.status, 1, variable)
      t.match(run.stderr, /password: expected at least 12 characters/, variable)
      t.notOk(
        run.stderr.includes(short) || run.stdout.includes(short),
        'the password is not echoed',
      )
    }
  },
)
