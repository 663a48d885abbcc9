/**
 * The forum in its production shape, as processes: the setup step (`npm run example -- setup`,
 * with the administrator's URL, both passwords and the signing key) prepares the database and
 * prints every repair with its finding code; the serve step (`npm run example` with the runtime
 * role's DATABASE_URL and the key) changes nothing and refuses to start on any finding. One
 * database for the file: each row weakens it one way, sees the serve step refuse with the code,
 * the setup step repair it with the same code, and the serve step start cleanly again.
 */
import { uncoveredChildEnv } from '../helpers/child-env.ts'
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { dataKeys } from 'keyhole'
import { freePort } from '../../dev/free-port.ts'
import { build } from '../../example-app/app.ts'
import { canCreateRoles, PRIVILEGED_WARNING } from '../../example-app/database.ts'
import { buildExpress } from '../../example-app/express/app.ts'
import { signToken } from '../../example-app/tokens.ts'
import { createTestDatabase } from '../helpers/database.ts'

const root = new URL('../../', import.meta.url)
const command = ['--conditions=keyhole-source', '--import', 'tsx', 'example-app/main.ts']
const START_MS = 60_000

const db = await createTestDatabase(t)
const migrator = `${db.prefix}_migrator`
const runtime = `${db.prefix}_app`
const secrets = {
  migration: randomBytes(18).toString('base64url'),
  runtime: randomBytes(18).toString('base64url'),
  signingKey: randomBytes(32).toString('base64url'),
  dataKey: randomBytes(32).toString('base64'),
  jwt: randomBytes(32).toString('base64url'),
}
/** The setup step's environment: the administrator's URL, both passwords, the key. */
const setupEnv = {
  KEYHOLE_ADMIN_URL: db.url,
  KEYHOLE_MIGRATION_PASSWORD: secrets.migration,
  KEYHOLE_RUNTIME_PASSWORD: secrets.runtime,
  KEYHOLE_SIGNING_KEY: secrets.signingKey,
  FORUM_MIGRATION_ROLE: migrator,
  FORUM_RUNTIME_ROLE: runtime,
}
/** The serve step's environment: the runtime role's URL and the keys, no other credential. */
const serveEnv = {
  DATABASE_URL: db.urlAs(runtime, secrets.runtime),
  KEYHOLE_SIGNING_KEY: secrets.signingKey,
  KEYHOLE_DATA_KEY: secrets.dataKey,
  JWT_SECRET: secrets.jwt,
}

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs the example with exactly `env` (and PATH); `healthy` is called once it answers /health. */
function run(
  args: string[],
  env: Record<string, string>,
  healthy?: (port: number) => Promise<void>,
): Promise<Run & { served: boolean }> {
  return (async () => {
    const port = await freePort()
    const child = spawn(process.execPath, [...command, ...args], {
      cwd: root,
      env: uncoveredChildEnv({ PATH: process.env.PATH, PORT: String(port), ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    let status: number | null | undefined
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve((status = code))),
    )
    let served = false
    if (healthy !== undefined) {
      for (let i = 0; i < START_MS / 200 && status === undefined; i++) {
        const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
          (r) => r.status === 200,
          () => false,
        )
        if (ok) {
          served = true
          await healthy(port)
          child.kill('SIGTERM')
          break
        }
        await sleep(200)
      }
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), START_MS)
    await exited
    clearTimeout(timer)
    return { status: status ?? null, stdout, stderr, served }
  })()
}

const setupStep = () => run(['setup'], setupEnv)
const keys = dataKeys({ current: secrets.dataKey })
const serveStep = (healthy: (port: number) => Promise<void> = async () => {}) =>
  run([], serveEnv, healthy)

function noSecret(t: Test, output: string, what: string) {
  for (const [name, value] of Object.entries(secrets)) {
    t.notOk(output.includes(value), `${what}: no ${name} secret in the output`)
  }
}

// Before the first subtest: the setup step on a new database, then once more.
const first = await setupStep()
const second = await setupStep()

t.test('the setup step creates the roles and tables, then changes nothing', async (t) => {
  t.equal(first.status, 0, first.stderr)
  t.equal(
    first.stdout,
    [
      `created role "${migrator}"`,
      `created role "${runtime}"`,
      'created signing key',
      'created table public.groups',
      'created table public.discussion_threads',
      'created table public.posts',
      // A new database gives PUBLIC TEMPORARY: a finding, which setup corrects.
      `repaired KH_DB_DATABASE_TEMP: revoked TEMPORARY on database "${db.name}" from PUBLIC`,
      'keyhole example setup: done\n',
    ].join('\n'),
    'what it created is not reported as a repair',
  )
  t.equal(second.status, 0, second.stderr)
  t.equal(
    second.stdout,
    'no repairs: the database was as setup leaves it\nkeyhole example setup: done\n',
    'the second run says nothing changed',
  )
  noSecret(t, first.stdout + first.stderr + second.stdout + second.stderr, 'setup')
})

t.test('the serve step serves as the runtime role, with no setup and no warning', async (t) => {
  let created = 0
  let inviteCode: unknown
  const served = await serveStep(async (port) => {
    const token = await signToken(
      { jwtSecret: secrets.jwt, jwtIssuer: 'keyhole-example', jwtAudience: 'forum' },
      {
        sub: 'ops',
        permissions: [{ group: '00000000-0000-4000-8000-000000000000', role: 'admin' }],
      },
    )
    const response = await fetch(`http://127.0.0.1:${port}/groups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'served as the runtime role' }),
    })
    created = response.status
    inviteCode = ((await response.json()) as { inviteCode?: unknown }).inviteCode
  })
  t.ok(served.served, `it serves: ${served.stderr}`)
  t.equal(created, 201, 'an authenticated request succeeds')
  t.match(inviteCode, /^[A-Za-z0-9_-]{16}$/, 'the new group has an invite code')
  const { rows } = await db.pool.query<{ invite_code: string }>(
    "SELECT invite_code FROM groups WHERE name = 'served as the runtime role'",
  )
  t.match(rows[0]?.invite_code, /^kh1\./, 'stored as keyhole ciphertext, under KEYHOLE_DATA_KEY')
  t.notOk(rows[0]?.invite_code.includes(inviteCode as string), 'not in clear')
  t.equal(served.status, 0, 'exit 0 on SIGTERM')
  t.notMatch(served.stdout, /privileged|repaired|created/, 'no setup, no privileged warning')
})

const weakenings: [string, string, string][] = [
  ['RLS not forced', 'ALTER TABLE posts NO FORCE ROW LEVEL SECURITY', 'KH_DB_RLS_NOT_FORCED'],
  ['RLS disabled', 'ALTER TABLE posts DISABLE ROW LEVEL SECURITY', 'KH_DB_RLS_DISABLED'],
  ['BYPASSRLS on the runtime role', `ALTER ROLE ${runtime} BYPASSRLS`, 'KH_DB_BYPASSRLS'],
  ['CREATE on the schema', `GRANT CREATE ON SCHEMA public TO ${runtime}`, 'KH_DB_SCHEMA_CREATE'],
  ['TRUNCATE granted', `GRANT TRUNCATE ON posts TO ${runtime}`, 'KH_DB_TABLE_PRIVILEGE'],
  ['a policy altered', 'ALTER POLICY keyhole_select ON posts USING (true)', 'KH_DB_POLICY_ALTERED'],
]

for (const [name, sql, code] of weakenings) {
  t.test(`${name}: the serve step refuses with ${code}, setup repairs it`, async (t) => {
    await db.pool.query(sql)
    const refused = await serveStep()
    t.not(refused.status, 0, 'refuses to start')
    t.notOk(refused.served, 'never serves')
    t.match(refused.stderr, /^keyhole example: could not start: keyhole refuses to start/)
    t.match(refused.stderr, `  - ${code}: `, 'the finding with its code on stderr')

    const repaired = await setupStep()
    t.equal(repaired.status, 0, repaired.stderr)
    t.match(repaired.stdout, new RegExp(`^repaired ${code}: .+$`, 'm'), 'the repair, with its code')
    noSecret(t, repaired.stdout + repaired.stderr, name)

    const clean = await serveStep()
    t.ok(clean.served, `a clean start once repaired: ${clean.stderr}`)
    t.equal(clean.status, 0)
  })
}

t.test('after the repairs the setup step has nothing left to repair', async (t) => {
  const again = await setupStep()
  t.equal(again.status, 0)
  t.match(again.stdout, /^no repairs: /)
})

t.test('a missing or bad variable: one line on stderr, exit status 1', async (t) => {
  const rows: [string, string[], Record<string, string>, RegExp][] = [
    [
      'setup without its variables',
      ['setup'],
      {},
      /^keyhole example: invalid configuration: KEYHOLE_ADMIN_URL must be set; KEYHOLE_MIGRATION_PASSWORD must be set; KEYHOLE_RUNTIME_PASSWORD must be set; KEYHOLE_SIGNING_KEY must be set\n$/,
    ],
    [
      'setup with a short password',
      ['setup'],
      { ...setupEnv, KEYHOLE_RUNTIME_PASSWORD: 'short-one' },
      /^keyhole example: invalid configuration: KEYHOLE_RUNTIME_PASSWORD must be at least 12 characters\n$/,
    ],
    [
      'setup with an administrator who cannot log in',
      ['setup'],
      { ...setupEnv, KEYHOLE_ADMIN_URL: db.urlAs(runtime, 'not-the-password') },
      /^keyhole example: setup failed: password authentication failed for user "[^"]+"\n$/,
    ],
    [
      'serve as the runtime role without the signing key',
      [],
      { DATABASE_URL: serveEnv.DATABASE_URL, JWT_SECRET: secrets.jwt },
      /^keyhole example: invalid configuration: KEYHOLE_SIGNING_KEY must be set when DATABASE_URL names the runtime role\n$/,
    ],
    [
      'serve as the runtime role without the data key',
      [],
      { DATABASE_URL: serveEnv.DATABASE_URL, KEYHOLE_SIGNING_KEY: secrets.signingKey },
      /^keyhole example: invalid configuration: KEYHOLE_DATA_KEY must be set when DATABASE_URL is set/,
    ],
    [
      'a malformed data key',
      [],
      { ...serveEnv, KEYHOLE_DATA_KEY: 'c2hvcnQ=' },
      /^keyhole example: invalid configuration: KEYHOLE_DATA_KEY must be 32 bytes as base64/,
    ],
    [
      'a malformed signing key',
      [],
      { ...serveEnv, KEYHOLE_SIGNING_KEY: 'c2hvcnQ' },
      /^keyhole example: invalid configuration: KEYHOLE_SIGNING_KEY must be at least 32 bytes/,
    ],
  ]
  for (const [name, args, env, stderr] of rows) {
    const r = await run(args, env)
    t.equal(r.status, 1, `${name}: exit status 1`)
    t.match(r.stderr, stderr, name)
    t.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`)
    noSecret(t, r.stdout + r.stderr, name)
  }
})

t.test('build() needs a database: the runtime role or a privileged URL', async (t) => {
  await t.rejects(
    build({ jwtSecret: secrets.jwt, jwtIssuer: 'i', jwtAudience: 'a', dataKeys: keys }),
    /give runtime \(the serve step\) or databaseUrl \(development\)/,
  )
})

t.test('in process: build() as the runtime role serves; the two shapes told apart', async (t) => {
  t.equal(await canCreateRoles(db.url), true, 'the administrator may create roles')
  t.equal(await canCreateRoles(serveEnv.DATABASE_URL), false, 'the runtime role may not')
  const app = await build({
    runtime: { url: serveEnv.DATABASE_URL, signingKey: secrets.signingKey },
    jwtSecret: secrets.jwt,
    jwtIssuer: 'keyhole-example',
    jwtAudience: 'forum',
    dataKeys: keys,
  })
  t.teardown(() => app.close())
  t.equal((await app.inject('/health')).statusCode, 200)
})

// Last: development sets new passwords for both roles on every start.
t.test('development (a URL that may create roles): a warning, then each repair', async (t) => {
  await db.pool.query(`ALTER ROLE ${runtime} CREATEDB`)
  const lines: [string, object, string][] = []
  const logger = Object.fromEntries(
    ['fatal', 'error', 'warn', 'info', 'debug'].map((level) => [
      level,
      (fields: object, message: string) => lines.push([level, fields, message]),
    ]),
  ) as unknown as Parameters<typeof buildExpress>[0]['logger']
  const forum = await buildExpress({
    databaseUrl: db.url,
    roles: { migration: migrator, runtime },
    jwtSecret: secrets.jwt,
    jwtIssuer: 'keyhole-example',
    jwtAudience: 'forum',
    dataKeys: keys,
    logger,
  })
  await forum.close()
  t.same(lines.slice(0, 2), [
    ['warn', {}, PRIVILEGED_WARNING],
    [
      'warn',
      { code: 'KH_DB_CREATEDB' },
      `repaired KH_DB_CREATEDB: removed CREATEDB from the runtime role "${runtime}"`,
    ],
  ])
})
