/**
 * The `keyhole` command end to end: setup, migrate, policies, check and token against a real
 * database, as the shell runs them (a few spawned) and in process (every error path).
 */
import { uncoveredChildEnv } from '../helpers/child-env.ts'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { decodeJwt, jwtVerify } from 'jose'
import t from 'tap'
import { run } from '../../src/cli/main.ts'
import { storeLine } from '../../src/cli/setup-command.ts'
import { createTestDatabase } from '../helpers/database.ts'

const db = await createTestDatabase(t)
const bin = fileURLToPath(new URL('../../bin/keyhole.ts', import.meta.url))
const policiesModule = fileURLToPath(new URL('./helpers/policies.js', import.meta.url))
const migrator = { name: `${db.prefix}_migrator`, password: randomBytes(18).toString('base64url') }
const runtime = { name: `${db.prefix}_runtime`, password: randomBytes(18).toString('base64url') }
const secret = randomBytes(32).toString('base64url')
const env = {
  KEYHOLE_ADMIN_URL: db.url,
  KEYHOLE_MIGRATION_PASSWORD: migrator.password,
  KEYHOLE_RUNTIME_PASSWORD: runtime.password,
  KEYHOLE_MIGRATION_URL: db.urlAs(migrator.name, migrator.password),
  KEYHOLE_RUNTIME_URL: db.urlAs(runtime.name, runtime.password),
  KEYHOLE_TOKEN_SECRET: secret,
}
const migrations = await mkdtemp(join(tmpdir(), 'keyhole-cli-'))
await writeFile(
  join(migrations, '000001.do.notes.sql'),
  'CREATE TABLE app.notes (id serial PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL);',
)

/** Runs the CLI in process; returns status and output. */
async function cli(args: string[], extraEnv: Record<string, string | undefined> = {}) {
  const out: string[] = []
  const err: string[] = []
  const status = await run(args, {
    env: { ...env, ...extraEnv },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  })
  return { status, out: out.join('\n'), err: err.join('\n') }
}

const exec = promisify(execFile)
/** Runs the CLI as the shell does. */
async function spawn(args: string[], extraEnv: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['--import', 'tsx', bin, ...args], {
      env: uncoveredChildEnv({ ...process.env, ...env, ...extraEnv }),
    })
    return { status: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { status: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

const roles = ['--migration-role', migrator.name, '--runtime-role', runtime.name, '--schema', 'app']

t.test('setup --generate-key prints the key once, nothing else secret', async (t) => {
  const r = await spawn(['setup', ...roles, '--generate-key'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^[A-Za-z0-9_-]{43}\n$/)
  t.equal(
    r.stderr,
    [
      `created role "${migrator.name}"`,
      `created role "${runtime.name}"`,
      'created signing key',
      `repaired KH_DB_DATABASE_TEMP: revoked TEMPORARY on database "${db.name}" from PUBLIC`,
      storeLine.sealed,
      'keyhole setup: done\n',
    ].join('\n'),
    'what it created, each repair with its finding code',
  )
  for (const s of [migrator.password, runtime.password, db.url]) {
    t.notOk(r.stdout.includes(s) || r.stderr.includes(s), 'no secret echoed')
  }
  const inProcess = await cli(['setup', ...roles, '--generate-key'])
  t.equal(inProcess.status, 0, inProcess.err)
  t.match(inProcess.out, /^[A-Za-z0-9_-]{43}$/, 'in process too')
  const again = await cli(['setup', ...roles, '--keep-key'])
  t.same([again.status, again.out], [0, ''], '--keep-key prints nothing')
  const given = await cli(['setup', ...roles], {
    KEYHOLE_SIGNING_KEY: randomBytes(32).toString('base64url'),
  })
  t.same([given.status, given.out], [0, ''])
})

t.test('setup prints each repair of drift with its code, then "no repairs"', async (t) => {
  await db.pool.query(`ALTER ROLE ${runtime.name} BYPASSRLS; GRANT CREATE ON SCHEMA app TO PUBLIC`)
  const repaired = await cli(['setup', ...roles, '--keep-key'])
  t.same(
    [repaired.status, repaired.out, repaired.err.split('\n')],
    [
      0,
      '',
      [
        `repaired KH_DB_BYPASSRLS: removed BYPASSRLS from the runtime role "${runtime.name}"`,
        'repaired KH_DB_SCHEMA_CREATE: revoked CREATE on schema "app" from PUBLIC',
        storeLine.sealed,
        'keyhole setup: done',
      ],
    ],
  )
  const again = await cli(['setup', ...roles, '--keep-key'])
  t.same(again.err.split('\n'), [
    'no repairs: the roles and privileges were as setup leaves them',
    storeLine.sealed,
    'keyhole setup: done',
  ])
  await db.pool.query(`DROP OWNED BY ${runtime.name}; DROP ROLE ${runtime.name}`)
  const recreated = await cli(['setup', ...roles, '--keep-key'])
  t.same(
    recreated.err.split('\n'),
    [
      `created role "${runtime.name}"`,
      'no repairs: the roles and privileges were as setup leaves them',
      storeLine.sealed,
      'keyhole setup: done',
    ],
    'a role created again is no repair',
  )
  for (const output of [repaired.err, again.err]) {
    for (const s of [migrator.password, runtime.password, db.url]) {
      t.notOk(output.includes(s), 'no secret echoed')
    }
  }
})

t.test('migrate, policies, check', async (t) => {
  const m = await spawn([
    'migrate',
    '--migrations',
    migrations,
    '--policies',
    policiesModule,
    '--runtime-role',
    runtime.name,
  ])
  t.equal(m.status, 0, m.stderr)
  t.match(m.stdout, /0 keyhole and 1 application migration\(s\) applied; policies applied/)
  const p = await cli(['policies', '--policies', policiesModule, '--runtime-role', runtime.name])
  t.equal(p.status, 0)
  t.match(p.out, /CREATE POLICY keyhole_select ON "app"."notes"/)
  const check = ['check', '--policies', policiesModule, '--migration-role', migrator.name]
  const ok = await spawn([...check, '--schema', 'app'])
  t.same(
    [ok.status, ok.stdout],
    [
      0,
      'keyhole check: no findings (1 guarded table(s))\nkeyhole check: capability store: sealed\n',
    ],
    ok.stderr,
  )
  const okInProcess = await cli([...check, '--schema', 'app'])
  t.same(
    [okInProcess.status, okInProcess.out],
    [0, 'keyhole check: no findings (1 guarded table(s))\nkeyhole check: capability store: sealed'],
    okInProcess.err,
  )
  const migratedAgain = await cli([
    'migrate',
    '--migrations',
    migrations,
    '--policies',
    policiesModule,
    '--runtime-role',
    runtime.name,
  ])
  t.match(migratedAgain.out, /policies applied/, migratedAgain.err)
  const typed = await cli([
    'policies',
    '--policies',
    policiesModule,
    '--runtime-role',
    runtime.name,
    '--group-id-type',
    'uuid',
  ])
  t.equal(typed.status, 0, typed.err)
  const badType = await cli(['migrate', '--group-id-type', 'nope'])
  t.equal(badType.status, 1)
  t.match(badType.err, /--group-id-type must be one of uuid/)
  await db.pool.query(`ALTER TABLE app.notes NO FORCE ROW LEVEL SECURITY`)
  const bad = await cli([...check, '--schema', 'app'])
  t.equal(bad.status, 1)
  t.match(
    bad.out,
    /1 finding\(s\)\n  - KH_DB_RLS_NOT_FORCED: .*\n    fix: .*\nkeyhole check: capability store: sealed$/,
  )
  await db.pool.query(`ALTER TABLE app.notes FORCE ROW LEVEL SECURITY`)
  const plain = await cli(['migrate'])
  t.same(
    [plain.status, plain.out],
    [0, 'keyhole: 0 keyhole and 0 application migration(s) applied'],
  )
})

t.test('token mints an HS256 token from the secret in the environment', async (t) => {
  const r = await spawn([
    'token',
    '--subject',
    'alice',
    '--permission',
    'g1:member',
    '--permission',
    'g2:admin',
    '--issuer',
    'dev',
    '--audience',
    'api',
    '--expires-in',
    '5m',
  ])
  t.equal(r.status, 0, r.stderr)
  t.notOk(r.stdout.includes(secret))
  const { payload, protectedHeader } = await jwtVerify(
    r.stdout.trim(),
    new TextEncoder().encode(secret),
    {
      issuer: 'dev',
      audience: 'api',
    },
  )
  t.equal(protectedHeader.alg, 'HS256')
  t.match(payload, {
    sub: 'alice',
    permissions: [
      { group: 'g1', role: 'member' },
      { group: 'g2', role: 'admin' },
    ],
  })
  t.equal(payload.exp! - payload.iat!, 300)
  const withPermission = await cli([
    'token',
    '--subject',
    'bob',
    '--permission',
    'g1:member',
    '--issuer',
    'i',
    '--audience',
    'a',
  ])
  t.equal(withPermission.status, 0, withPermission.err)
  const plain = await cli(['token', '--subject', 'bob'])
  t.equal(plain.status, 0, 'in process, the default claim name')
  t.match(plain.out, /^[\w-]+\.[\w-]+\.[\w-]+$/)
  const custom = await cli(['token', '--subject', 'bob', '--claim', 'perms'])
  t.same(decodeJwt(custom.out).perms, [])
})

t.test('--help everywhere', async (t) => {
  for (const command of ['setup', 'migrate', 'check', 'policies', 'token']) {
    const r = await cli([command, '--help'])
    t.same([r.status, r.err], [0, ''], command)
    t.match(r.out, new RegExp(`^keyhole ${command}`), command)
  }
  const top = await cli(['--help'])
  t.same([top.status, top.out.startsWith('usage: keyhole')], [0, true])
  t.equal((await cli([])).status, 1, 'no command: usage, status 1')
})

t.test('user mistakes: one line on stderr, status 1, no stack, no secret', async (t) => {
  const cases: [string[], Record<string, string | undefined>, RegExp][] = [
    [['nope'], {}, /^keyhole: unknown command "nope"/],
    [['setup', '--bogus'], {}, /^keyhole setup: Unknown option '--bogus'/],
    [['setup', ...roles], {}, /exactly one of KEYHOLE_SIGNING_KEY, --generate-key or --keep-key$/],
    [
      ['setup', ...roles, '--keep-key'],
      { KEYHOLE_ADMIN_URL: undefined },
      /missing KEYHOLE_ADMIN_URL/,
    ],
    [['setup', '--keep-key', '--runtime-role', 'x'], {}, /missing --migration-role$/],
    [
      ['setup', ...roles, '--keep-key'],
      { KEYHOLE_RUNTIME_PASSWORD: '' },
      /missing KEYHOLE_RUNTIME_PASSWORD$/,
    ],
    [
      ['setup', ...roles],
      { KEYHOLE_SIGNING_KEY: 'short' },
      /Invalid option signingKey.*\[KH_INVALID_OPTIONS\]$/,
    ],
    [
      ['setup', '--migration-role', 'a"b', '--runtime-role', 'r', '--keep-key'],
      {},
      /\[KH_INVALID_IDENTIFIER\]$/,
    ],
    [['migrate', '--group-id-type', 'float'], {}, /--group-id-type must be one of/],
    [['migrate', '--policies', policiesModule], {}, /missing --runtime-role \(with --policies\)$/],
    [['migrate'], { KEYHOLE_MIGRATION_URL: undefined }, /missing KEYHOLE_MIGRATION_URL/],
    [['policies', '--runtime-role', 'r'], {}, /missing --policies$/],
    [
      ['policies', '--runtime-role', 'r', '--policies', '/nonexistent/p.ts'],
      {},
      /cannot load the policies module/,
    ],
    [
      [
        'policies',
        '--runtime-role',
        'r',
        '--policies',
        fileURLToPath(new URL('./helpers/no-policies.ts', import.meta.url)),
      ],
      {},
      /exports no policies/,
    ],
    [
      ['check', '--policies', policiesModule],
      { KEYHOLE_RUNTIME_URL: undefined },
      /missing KEYHOLE_RUNTIME_URL/,
    ],
    [
      ['check', '--policies', policiesModule],
      { KEYHOLE_RUNTIME_URL: db.urlAs(runtime.name, 'wrong-password') },
      /password authentication failed.*\[28P01\]$/,
    ],
    [['token'], {}, /missing --subject$/],
    [
      ['token', '--subject', 's'],
      { KEYHOLE_TOKEN_SECRET: undefined },
      /missing KEYHOLE_TOKEN_SECRET$/,
    ],
    [['token', '--subject', 's'], { KEYHOLE_TOKEN_SECRET: 'short' }, /at least 32 bytes$/],
    [['token', '--subject', 's', '--permission', 'nocolon'], {}, /--permission must be GROUP:ROLE/],
    [['token', '--subject', 's', '--expires-in', 'soon'], {}, /--expires-in must be a duration/],
  ]
  for (const [args, extra, message] of cases) {
    const r = await cli(args, extra)
    t.equal(r.status, 1, args.join(' '))
    t.match(r.err.split('\n')[0], message, args.join(' '))
    t.notMatch(r.err, /\n\s+at /, 'no stack')
    t.notOk(r.err.includes(runtime.password) || r.err.includes(secret), 'no secret')
  }
  const spawned = await spawn(['token'])
  t.same([spawned.status, spawned.stderr], [1, 'keyhole token: missing --subject\n'])
})
