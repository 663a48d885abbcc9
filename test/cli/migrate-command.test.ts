/**
 * `keyhole migrate` and the connection URLs the commands read: a missing migrations folder is an
 * error, not "0 migrations applied"; a folder without one migration file is a warning; a URL that
 * node-postgres cannot parse (a password with an un-encoded character) names its variable and how
 * to fix it, never the URL.
 */
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { run } from '../../src/cli/main.ts'
import { createKeyholeDatabase } from '../db/helpers/keyhole.ts'

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
