/**
 * `keyhole check`, the deployment gate, judges what the server judges at start-up: a table
 * shared on purpose can be listed (--unguarded-table, named as the finding names it), the
 * installed policies are compared with the module's (a policy altered by hand fails), and with
 * the server's KEYHOLE_SIGNING_KEY the database must accept what it signs.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import pg from 'pg'
import t from 'tap'
import { run } from '../../src/cli/main.ts'
import { generateSigningKey } from '../../src/db/signing-key.ts'
import { createKeyholeDatabase } from '../db/helpers/keyhole.ts'
import { uncoveredChildEnv } from '../helpers/child-env.ts'

const k = await createKeyholeDatabase(t)
const policiesModule = fileURLToPath(new URL('./helpers/notes-policies.js', import.meta.url))
const check = ['check', '--policies', policiesModule, '--migration-role', k.migrator.name]

async function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = []
  const err: string[] = []
  const status = await run(args, {
    env: { KEYHOLE_RUNTIME_URL: k.runtimeUrl, ...env },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  })
  return { status, out: out.join('\n'), err: err.join('\n') }
}

/** Runs SQL as the migration role, as the application's migrations do. */
async function asMigrator(sql: string) {
  const client = new pg.Client({ connectionString: k.migratorUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

const clean = {
  status: 0,
  out: 'keyhole check: no findings (1 guarded table(s))\nkeyhole check: capability store: sealed',
  err: '',
}

t.test('a table outside the policies: named schema-qualified, then listed', async (t) => {
  t.same(await cli(check), clean, 'the database passes')
  // setup's default privileges grant every new table of the migration role to the runtime role.
  await asMigrator('CREATE TABLE public.audit_log (id int)')
  t.teardown(() => asMigrator('DROP TABLE public.audit_log'))
  const found = await cli(check)
  t.equal(found.status, 1)
  t.match(
    found.out,
    /^keyhole check: 1 finding\(s\)\n {2}- KH_DB_UNGUARDED_TABLE: the runtime role \S+ can reach the table public\.audit_log, /,
  )
  t.match(
    found.out,
    /list public\.audit_log in checks\.unguardedTables \(keyhole check --unguarded-table public\.audit_log\)/,
  )
  t.same(await cli([...check, '--unguarded-table', 'public.audit_log']), clean, 'listed: passes')
  t.same(
    await cli([
      ...check,
      '--unguarded-table',
      'public.other',
      '--unguarded-table',
      'public.audit_log',
    ]),
    clean,
    'the flag repeats',
  )
})

t.test('a .ts policies module, loaded through tsx with a second copy of keyhole', async (t) => {
  // As the shell runs the bin under tsx; the module's keyhole is another copy (see its comment).
  const bin = fileURLToPath(new URL('../../bin/keyhole.ts', import.meta.url))
  const module = fileURLToPath(new URL('./helpers/notes-policies.ts', import.meta.url))
  const args = ['check', '--policies', module, '--migration-role', k.migrator.name]
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', bin, ...args],
    { env: uncoveredChildEnv({ ...process.env, KEYHOLE_RUNTIME_URL: k.runtimeUrl }) },
  )
  t.same({ stdout, stderr }, { stdout: `${clean.out}\n`, stderr: '' })
})

t.test('--unguarded-table takes SCHEMA.TABLE', async (t) => {
  for (const bad of ['audit_log', 'a.b.c', 'public. x']) {
    t.same(await cli([...check, '--unguarded-table', bad]), {
      status: 1,
      out: '',
      err: 'keyhole check: --unguarded-table must be SCHEMA.TABLE (public.audit_log)',
    })
  }
})

t.test('--help names the new flags', async (t) => {
  const help = await cli(['check', '--help'])
  t.match(help.out, /--unguarded-table SCHEMA\.TABLE/)
  t.match(help.out, /KEYHOLE_SIGNING_KEY/)
})

t.test("KEYHOLE_SIGNING_KEY: the database must accept the server's key", async (t) => {
  t.same(await cli(check, { KEYHOLE_SIGNING_KEY: k.signingKey }), clean, 'the installed key')
  const wrong = await cli(check, { KEYHOLE_SIGNING_KEY: generateSigningKey() })
  t.equal(wrong.status, 1)
  t.match(wrong.out, /^keyhole check: 1 finding\(s\)\n {2}- KH_DB_SIGNING_KEY_MISMATCH: /)
})

t.test('a policy altered by hand fails the gate', async (t) => {
  await k.db.pool.query(
    `ALTER POLICY keyhole_select ON public.notes
       USING (group_id = ANY (keyhole.group_ids('moderator')::uuid[]))`,
  )
  const altered = await cli(check)
  t.equal(altered.status, 1)
  t.match(altered.out, /KH_DB_POLICY_ALTERED/)
  const typed = await cli([...check, '--group-id-type', 'text'])
  t.match(
    typed.out,
    /KH_DB_POLICY_NOT_APPLIED: the policy keyhole_insert on "notes" was applied from another statement/,
    'compared as generated for the given group-ID type',
  )
})
