/**
 * keyhole as a user gets it: `npm pack` (which builds by prepack), the tarball installed into a
 * fresh application (offline, from the npm cache `npm ci` filled), first alone (no pg: the core
 * and `keyhole token` work, what needs pg says so), then with its peers; every ```ts block of
 * README.md and docs/*.md compiled there as its own module under strict and
 * exactOptionalPropertyTypes (a block marked ```ts fragment is skipped); the README's quick start
 * run against PostgreSQL and answering an authenticated request with a token the installed
 * `keyhole token` minted.
 */
import t, { type Test } from 'tap'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createTestDatabase } from '../helpers/database.ts'
import { appLock } from './helpers/lockfile.ts'

t.setTimeout(600_000)

const root = fileURLToPath(new URL('../../', import.meta.url))
const work = await mkdtemp(join(tmpdir(), 'keyhole-consumer-'))
const app = join(work, 'app')
await mkdir(app)
t.teardown(() => rm(work, { recursive: true, force: true }))

/**
 * The environment of a process a user starts: no npm lifecycle, test runner, loader or coverage
 * settings (with NODE_V8_COVERAGE the installed copy's dist/ would be reported, through its source
 * maps, as partly covered sources of its own).
 */
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) =>
      !/^(npm_(?!config_cache$|config_registry$)|NODE_OPTIONS$|NODE_V8_COVERAGE$|TAP|_TAPJS|DATABASE_URL$)/i.test(
        name,
      ),
  ),
)

/**
 * `command args` as `env -u … command args`, so the command runs with exactly the env it is given:
 * tap's @tapjs/processinfo adds its loader to the NODE_OPTIONS of every process a test starts, and
 * to an env without NODE_OPTIONS (as userEnv is) this test process's own NODE_OPTIONS, with its
 * `_TAPJS_PROCESSINFO_*` settings; without the unset, a loader npm test gives its test processes
 * reached the installed keyhole, which then ran a .ts policies module with no tsx.
 */
function asUser(command: string, args: string[]): [string, string[]] {
  const added = ['NODE_OPTIONS', ...Object.keys(process.env).filter((name) => /^_TAPJS/.test(name))]
  return ['env', [...added.flatMap((name) => ['-u', name]), command, ...args]]
}

interface Run {
  status: number
  stdout: string
  stderr: string
}

/** Runs a command, resolving with its status and output whatever the status. */
function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      ...asUser(command, args),
      { cwd: options.cwd, env: { ...userEnv, ...options.env }, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code
        resolve({ status: error ? (typeof code === 'number' ? code : 1) : 0, stdout, stderr })
      },
    )
  })
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** `npm install --offline` of the application's package.json and lock; a clear failure if a package is not cached. */
async function install(
  t: Test,
  tarball: { path: string; file: string },
  others: string[],
): Promise<boolean> {
  const { dependencies, lock } = await appLock(tarball, others)
  const manifest = { name: 'consumer-app', private: true, type: 'module', dependencies }
  await writeFile(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  await writeFile(join(app, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`)
  const r = await run('npm', ['install', '--offline', '--no-audit', '--no-fund'], { cwd: app })
  const notCached = /ENOTCACHED|only-if-cached/.test(r.stderr)
  return t.equal(
    r.status,
    0,
    notCached
      ? `npm install --offline: a package is not in the npm cache (run npm ci first, which fills it): ${r.stderr.split('\n').find((l) => /request to/.test(l)) ?? r.stderr}`
      : `npm install --offline ${others.join(' ')}`,
    { stderr: r.stderr },
  )
}

/** `npx keyhole …`, as a user runs it. */
const npxKeyhole = (args: string[], env: Record<string, string> = {}) =>
  run('npx', ['--no', '--', 'keyhole', ...args], { cwd: app, env })
/** The installed bin itself (its shebang and mode), without npx's second of start-up. */
const keyhole = (args: string[], env: Record<string, string> = {}) =>
  run(join(app, 'node_modules', '.bin', 'keyhole'), args, { cwd: app, env })

// 1. The tarball.
const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root })
if (!t.equal(packed.status, 0, 'npm pack (prepack builds)', { stderr: packed.stderr })) {
  process.exit(1)
}
const [pack] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
  filename: string
  size: number
  unpackedSize: number
  files: { path: string; size: number; mode: number }[]
}[]
const tarball = { path: `../${pack!.filename}`, file: join(work, pack!.filename) }

t.test(
  'the tarball: built JavaScript, declarations, maps with their sources, sql/, LICENSE',
  async (t) => {
    const files = new Map(pack!.files.map((f) => [f.path, f]))
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
    const targets = [
      manifest.types,
      `./${manifest.bin.keyhole}`,
      ...Object.values(manifest.exports).flatMap((e) =>
        typeof e === 'string'
          ? [e]
          : [(e as Record<string, string>).types, (e as Record<string, string>).import],
      ),
    ]
    for (const target of targets) t.ok(files.has(target.slice(2)), `${target} is in the tarball`)
    t.equal((files.get('dist/bin/keyhole.js')!.mode & 0o111) !== 0, true, 'the bin is executable')
    for (const path of ['LICENSE', 'README.md', 'sql/000001.do.keyhole-schema.sql']) {
      t.ok(files.has(path), path)
    }
    t.same(
      [...files.keys()].filter(
        (p) =>
          !/^(dist\/(src|plugins|bin)\/.*\.(js|d\.ts|js\.map)|sql\/.*\.sql|LICENSE|README\.md|package\.json)$/.test(
            p,
          ),
      ),
      [],
      'nothing else: no tests, bench, example or TypeScript sources',
    )
    const map = JSON.parse(await readFile(join(root, 'dist/src/index.js.map'), 'utf8'))
    t.equal(
      map.sourcesContent?.[0],
      await readFile(join(root, 'src/index.ts'), 'utf8'),
      'maps carry their sources',
    )
    t.comment(
      `tarball ${pack!.filename}: ${pack!.files.length} files, ${(pack!.size / 1024).toFixed(1)} kB packed, ${(pack!.unpackedSize / 1024).toFixed(1)} kB unpacked`,
    )
    t.comment(pack!.files.map((f) => `${String(f.size).padStart(7)} ${f.path}`).join('\n'))
  },
)

const started = Date.now()
const phases: string[] = []

// 2. keyhole alone: no pg, no framework.
await t.test(
  'npm install <tarball> alone: the core and keyhole token run without pg',
  async (t) => {
    const begin = Date.now()
    if (!(await install(t, tarball, []))) return
    phases.push(`install keyhole ${seconds(Date.now() - begin)}`)
    const env = await run(
      'node',
      [
        '-p',
        '[process.env.NODE_OPTIONS, ...Object.keys(process.env).filter((n) => /TAP/.test(n))]',
      ],
      { cwd: app },
    )
    t.same(
      [env.status, env.stdout],
      [0, '[ undefined ]\n'],
      "a user's process: no NODE_OPTIONS, no tap setting",
      { stderr: env.stderr },
    )
    const imported = await run(
      'node',
      [
        '--input-type=module',
        '-e',
        "const k = await import('keyhole'); console.log(typeof k.definePolicies)",
      ],
      { cwd: app },
    )
    t.same([imported.status, imported.stdout], [0, 'function\n'], "import('keyhole') without pg", {
      stderr: imported.stderr,
    })
    const testing = await run(
      'node',
      [
        '--input-type=module',
        '-e',
        "const k = await import('keyhole/testing'); console.log(typeof k.createPolicyTest, typeof k.expectAccess)",
      ],
      { cwd: app },
    )
    t.same(
      [testing.status, testing.stdout],
      [0, 'function function\n'],
      "import('keyhole/testing') without pg (it loads pg when a test starts)",
      { stderr: testing.stderr },
    )
    // The repository's own `keyhole-source` condition (./src/*.ts) is not in the published
    // manifest: an application that sets it still gets the built files; the source tree keeps it.
    const conditioned = await run(
      'node',
      [
        '--conditions=keyhole-source',
        '--input-type=module',
        '-e',
        "const k = await import('keyhole'); console.log(typeof k.definePolicies)",
      ],
      { cwd: app },
    )
    t.same([conditioned.status, conditioned.stdout], [0, 'function\n'], 'keyhole-source set', {
      stderr: conditioned.stderr,
    })
    const installed = await readFile(join(app, 'node_modules/keyhole/package.json'), 'utf8')
    t.notMatch(installed, /"keyhole-source":/, 'no keyhole-source export condition published')
    t.match(await readFile(join(root, 'package.json'), 'utf8'), /"keyhole-source":/, 'restored')
    t.notOk((await readdir(root)).includes('package.json.keyhole-source'), 'postpack left no copy')
    const help = await npxKeyhole(['--help'])
    t.equal(help.status, 0, 'keyhole --help')
    t.match(help.stdout, /^usage: keyhole <command>/)
    for (const command of ['setup', 'migrate', 'check', 'policies', 'token']) {
      t.match(help.stdout, new RegExp(`\\n  ${command} `), command)
    }
    const setup = await keyhole(
      [
        'setup',
        '--database-url',
        'postgres://127.0.0.1:1/x',
        '--migration-role',
        'app_migrator',
        '--runtime-role',
        'app_runtime',
        '--generate-key',
      ],
      {
        KEYHOLE_MIGRATION_PASSWORD: randomBytes(18).toString('base64url'),
        KEYHOLE_RUNTIME_PASSWORD: randomBytes(18).toString('base64url'),
      },
    )
    t.equal(setup.status, 1, 'keyhole setup without pg')
    t.equal(
      setup.stderr,
      "keyhole setup: keyhole's setup() needs the pg package (node-postgres ^8.11.0), which is not installed: npm install pg [ERR_MODULE_NOT_FOUND]\n",
    )
    await writeFile(
      join(app, 'policies.ts'),
      "import { definePolicies, inGroup } from 'keyhole'\n\nexport const policies = definePolicies({\n  notes: { read: inGroup('group_id', 'member') },\n})\n",
    )
    const policies = await keyhole([
      'policies',
      '--policies',
      'policies.ts',
      '--runtime-role',
      'app_runtime',
    ])
    t.equal(policies.status, 1, 'a .ts policies module, no tsx in the application')
    t.match(
      policies.stderr,
      /this Node does not run TypeScript\. Install tsx in the application \(npm install --save-dev tsx\)/,
    )
  },
)

const peers = [
  'fastify',
  'express',
  'kysely',
  'pg',
  '@types/pg',
  '@types/express',
  '@types/node',
  'typescript',
]
let compiled = false

// 3. With its peers: every ts block compiles.
await t.test('with its peers: every ts block of README.md and docs/*.md compiles', async (t) => {
  const begin = Date.now()
  if (!(await install(t, tarball, peers))) return
  phases.push(`install the peers ${seconds(Date.now() - begin)}`)
  const blocks = join(app, 'blocks')
  await mkdir(blocks)
  const pages = [
    'README.md',
    ...(await readdir(join(root, 'docs')))
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => `docs/${f}`),
  ]
  let count = 0
  for (const page of pages) {
    const text = await readFile(join(root, page), 'utf8')
    let n = 0
    for (const m of text.matchAll(/^```ts([^\n]*)\n([\s\S]*?)^```/gm)) {
      if (m[1]!.trim() === 'fragment') continue
      n++
      count++
      const name = `${page.replace(/^docs\//, '').replace(/\.md$/, '')}-${n}.ts`
      await writeFile(join(blocks, name), m[2]!)
    }
  }
  t.ok(count > 0, `${count} blocks`)
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      moduleDetection: 'force',
      strict: true,
      exactOptionalPropertyTypes: true,
      skipLibCheck: false,
      noEmitOnError: true,
      rootDir: 'blocks',
      outDir: 'build',
      types: ['node'],
    },
    include: ['blocks'],
  }
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2))
  const typeCheck = Date.now()
  const tsc = await run('npx', ['--no', '--', 'tsc', '-p', '.'], { cwd: app })
  phases.push(`type-check ${seconds(Date.now() - typeCheck)}`)
  compiled = t.equal(
    tsc.status,
    0,
    'tsc: strict, exactOptionalPropertyTypes, NodeNext, skipLibCheck false',
    {
      diagnostics: tsc.stdout,
    },
  )
})

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

// 4. The quick start serves.
await t.test(
  'the README quick start serves an authenticated request',
  { skip: !compiled && 'it did not compile' },
  async (t) => {
    const db = await createTestDatabase(t)
    const secret = randomBytes(32).toString('base64url')
    const group = randomUUID()
    const minted = await npxKeyhole(
      ['token', '--subject', 'alice', '--permission', `${group}:member`],
      {
        KEYHOLE_TOKEN_SECRET: secret,
      },
    )
    t.equal(minted.status, 0, 'npx keyhole token', { stderr: minted.stderr })
    const token = minted.stdout.trim()
    const port = await freePort()
    const begin = Date.now()
    const child: ChildProcess = spawn(...asUser(process.execPath, ['build/README-1.js']), {
      cwd: app,
      env: { ...userEnv, DATABASE_URL: db.url, JWT_SECRET: secret, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()))
    const exited = new Promise((resolve) => child.on('exit', resolve))
    t.teardown(async () => {
      child.kill('SIGTERM')
      await exited
    })
    const url = `http://127.0.0.1:${port}/groups/${group}/notes`
    const auth = { authorization: `Bearer ${token}` }
    let first: Response | undefined
    for (let i = 0; i < 300 && first === undefined && child.exitCode === null; i++) {
      first = await fetch(url, { headers: auth }).catch(() => undefined)
      if (first === undefined) await new Promise((r) => setTimeout(r, 100))
    }
    const toFirst200 = Date.now()
    t.equal(first?.status, 200, 'the first authenticated GET answers 200', { output })
    phases.push(`start → first 200 ${seconds(toFirst200 - begin)}`)
    t.comment(
      `npm install <tarball> → first 200: ${seconds(toFirst200 - started)} (${phases.join(', ')})`,
    )
    const created = await fetch(url, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ body: 'hello' }),
    })
    t.equal(created.status, 201, 'POST answers 201')
    t.match(await created.json(), { group_id: group, body: 'hello' })
    const listed = await fetch(url, { headers: auth })
    t.match(await listed.json(), [{ group_id: group, body: 'hello' }], 'the member reads it back')
    t.equal((await fetch(url)).status, 401, 'no token: 401')
  },
)

// 5. A .ts policies module with tsx in the application.
await t.test('with tsx in the application: keyhole policies takes the .ts module', async (t) => {
  if (!(await install(t, tarball, [...peers, 'tsx']))) return
  const policies = await keyhole([
    'policies',
    '--policies',
    'policies.ts',
    '--runtime-role',
    'app_runtime',
  ])
  t.equal(policies.status, 0, 'keyhole policies --policies policies.ts', {
    stderr: policies.stderr,
  })
  t.match(policies.stdout, /CREATE POLICY/)
})
