/**
 * `keyhole migrate` and the connection URLs the commands read: a missing migrations folder is an
 * error, not "0 migrations applied"; a folder without one migration file is a warning; a URL that
 * node-postgres cannot parse (a password with an un-encoded character) names its variable and how
 * to fix it, never the URL. `migrate()` returns what its policies step repaired (and the command
 * prints it): each weakening of a guarded table that existed before, with its finding's code.
 */
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { run } from '../../src/cli/main.ts'
import { migrate } from '../../src/db/migrate.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)

async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = []
  const err: string[] = []
  const status = await run(args, {
    env: { KEYHOLE_MIGRATION_URL: k.migratorUrl, KEYHOLE_RUNTIME_URL: k.runtimeUrl, ...env },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  })
  return { status, out: out.join('\n'), err: err.join('\n') }
}

t.test('--migrations: a missing folder fails, an empty one warns', async (t) => {
  t.same(await cli(['migrate', '--migrations', 'nonexist']), {
    status: 1,
    out: '',
    err: 'keyhole migrate: --migrations nonexist: no such directory',
  })
  const empty = await mkdtemp(join(tmpdir(), 'keyhole-empty-'))
  await writeFile(join(empty, 'create-posts.sql'), 'SELECT 1')
  t.same(await cli(['migrate', '--migrations', empty]), {
    status: 0,
    out: 'keyhole: 0 keyhole and 0 application migration(s) applied',
    err: `keyhole migrate: warning: --migrations ${empty} holds no NNNNNN.do.NAME.sql file (postgrator's names: 000001.do.create-posts.sql)`,
  })
  // The test database's migrations 1 and 2 made public.notes and its policies.
  const one = await mkdtemp(join(tmpdir(), 'keyhole-one-'))
  await writeFile(join(one, '000003.do.extra.sql'), 'CREATE TABLE public.extra (id int)')
  t.same(await cli(['migrate', '--migrations', one]), {
    status: 0,
    out: 'keyhole: 0 keyhole and 1 application migration(s) applied',
    err: '',
  })
})

t.test('a URL pg cannot parse names its source, never the URL', async (t) => {
  const fix = 'is not a valid URL: percent-encode @ : / # ? % in the password (@ → %40)'
  const cases: [string[], Record<string, string>, string][] = [
    [
      ['migrate'],
      { KEYHOLE_MIGRATION_URL: 'postgres://app:pa/ss-w0rd@localhost/db' },
      'migrate: KEYHOLE_MIGRATION_URL',
    ],
    [
      ['migrate'],
      { KEYHOLE_MIGRATION_URL: 'postgres://app:pa#ss-w0rd@localhost/db' },
      'migrate: KEYHOLE_MIGRATION_URL',
    ],
    [
      ['migrate'],
      { KEYHOLE_MIGRATION_URL: 'postgres://app:pa?ss-w0rd@localhost/db' },
      'migrate: KEYHOLE_MIGRATION_URL',
    ],
    [
      ['migrate', '--database-url', 'postgres://app:pa/ss-w0rd@localhost/db'],
      {},
      'migrate: --database-url',
    ],
    [
      ['check', '--policies', 'p.ts'],
      { KEYHOLE_RUNTIME_URL: 'postgres://app:pa/ss-w0rd@localhost/db' },
      'check: KEYHOLE_RUNTIME_URL',
    ],
  ]
  for (const [args, env, source] of cases) {
    const r = await cli(args, env)
    t.same([r.status, r.err], [1, `keyhole ${source} ${fix}`], `${args[0]} ${JSON.stringify(env)}`)
    t.notMatch(r.err, /ss-w0rd/, 'the password is not echoed')
  }
  // What pg does parse goes through to the connection: a socket directory, an empty host (socket
  // named in the query), a stray % pg encodes itself.
  for (const url of [
    '/nonexistent-socket-dir',
    'postgres://app:x@/db?host=/nonexistent-socket-dir',
    'postgres://app:50%off@127.0.0.1:1/db',
  ]) {
    const r = await cli(['migrate'], { KEYHOLE_MIGRATION_URL: url })
    t.equal(r.status, 1)
    t.notMatch(r.err, /not a valid URL/, url)
  }
})

t.test('the policies step returns and prints what it repaired', async (t) => {
  const policiesModule = fileURLToPath(new URL('./helpers/notes-policies.js', import.meta.url))
  const withPolicies = ['migrate', '--policies', policiesModule, '--runtime-role', k.runtime.name]
  const clean = {
    status: 0,
    out: 'keyhole: 0 keyhole and 0 application migration(s) applied; policies applied',
    err: '',
  }
  t.same(await cli(withPolicies), clean, 'as migration 2 installed them: nothing to repair')

  const asOwner = (sql: string) => k.db.pool.query(sql)
  await asOwner(`ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY;
    ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY;
    ALTER POLICY keyhole_select ON public.notes USING (true);
    DROP POLICY keyhole_insert ON public.notes;
    DROP POLICY keyhole_update ON public.notes;
    CREATE POLICY keyhole_update ON public.notes FOR UPDATE TO ${k.runtime.name} USING (true)`)
  const on = (policy: string) => `the policy ${policy} on notes`
  t.same(await cli(withPolicies), {
    ...clean,
    out: [
      clean.out,
      'repaired KH_DB_RLS_DISABLED: row-level security was disabled on notes: enabled',
      'repaired KH_DB_RLS_NOT_FORCED: row-level security was not forced on notes: forced',
      `repaired KH_DB_POLICY_ALTERED: ${on('keyhole_select')} was changed after keyhole applied it: applied`,
      `repaired KH_DB_POLICY_NOT_APPLIED: ${on('keyhole_insert')} was not installed: applied`,
      `repaired KH_DB_POLICY_NOT_APPLIED: ${on('keyhole_update')} had no keyhole record (made by other SQL than keyhole's): applied`,
    ].join('\n'),
  })
  t.same(await cli(withPolicies), clean, 'repaired: nothing left')

  // Other policies (delete left out, then back; another read guard), through migrate().
  const options = { policies: notesPolicies, runtimeRole: k.runtime.name }
  const { delete: _, ...noDelete } = notesPolicies.tables.notes!
  const fewer = { ...options, policies: definePolicies({ notes: noDelete }) }
  t.same((await migrate(k.migratorUrl, fewer)).repairs, [
    {
      code: 'KH_DB_POLICY_UNEXPECTED',
      message:
        'the permissive policy keyhole_delete on notes, which the policies do not define: dropped',
    },
  ])
  const back = await migrate(k.migratorUrl, options)
  t.same(
    back.repairs.map((r) => [r.code, r.message]),
    [['KH_DB_POLICY_NOT_APPLIED', `${on('keyhole_delete')} was not installed: applied`]],
  )
  const notes = notesPolicies.tables.notes!
  const moderators = definePolicies({ notes: { ...notes, read: notes.update! } })
  t.same((await migrate(k.migratorUrl, { ...options, policies: moderators })).repairs, [
    {
      code: 'KH_DB_POLICY_NOT_APPLIED',
      message: `${on('keyhole_select')} was applied from another statement than the policies generate now: applied`,
    },
  ])
  await migrate(k.migratorUrl, options)
  t.same((await migrate(k.migratorUrl)).repairs, [], 'no policies, no repairs')

  // A table this run's migrations create has no drift to repair; nor does a missing one.
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-new-table-'))
  await writeFile(join(dir, '000004.do.later.sql'), 'CREATE TABLE public.later (group_id uuid)')
  const later = definePolicies({ ...notesPolicies.tables, later: { read: noDelete.read! } })
  const created = await migrate(k.migratorUrl, {
    ...options,
    migrationsDir: dir,
    policies: later,
  })
  t.same([created.application, created.repairs], [[4], []])
  const missing = definePolicies({ nowhere: { read: noDelete.read! } })
  await t.rejects(migrate(k.migratorUrl, { ...options, policies: missing }), /nowhere/)
})
