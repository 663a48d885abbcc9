/**
 * `npm run bench [-- --quick]`: every benchmark in one process, against one embedded PostgreSQL
 * (or the server DATABASE_URL names, in a fresh `keyhole_bench` database). Prints a table per
 * part and writes bench/results/latest.json, latest.md and scaling.svg (the last run), and
 * quick.* or full.* (the last run of that mode).
 *
 * A part is a module exporting `run(context): Promise<BenchSection>` (bench/lib/types.ts). A part
 * whose module has not landed yet is listed as pending, never faked.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/embedded-postgres.ts'
import { markdown, scalingSvg, textTable, type RunInfo } from './lib/report.ts'
import type { BenchContext, BenchModule, BenchSection } from './lib/types.ts'

const quick = process.argv.includes('--quick')
/** `--only http,sql`: run only the parts whose module is bench/<name>.bench.ts. */
const onlyArg = process.argv.indexOf('--only')
const only = onlyArg > 0 ? (process.argv[onlyArg + 1] ?? '').split(',') : undefined
const results = new URL('./results/', import.meta.url)

interface Part {
  readonly title: string
  /** Relative to bench/. */
  readonly module: string
  /** Who writes the module, for the pending note. */
  readonly owner: string
  /**
   * For a module that is still a stand-alone script: run it as a child process against the same
   * server and read its printed figures. Used until the module exports `run(context)`.
   */
  readonly script?: {
    env(quick: boolean): Record<string, string>
    parse(stdout: string): BenchSection
  }
}

/** D1's bench/rls.bench.ts prints `guard-only : N ops/s`, `RLS mode : N ops/s`. */
function parseRls(stdout: string): BenchSection {
  const number = (pattern: RegExp) => {
    const match = pattern.exec(stdout)
    if (!match) throw new Error(`bench/rls.bench.ts printed no ${pattern.source}`)
    return Number(match[1])
  }
  const guard = number(/^\s*guard-only\s*:\s*([0-9.]+) ops\/s/m)
  const rls = number(/^\s*RLS mode\s*:\s*([0-9.]+) ops\/s/m)
  const ratio = rls / guard
  const listGuard = number(/list guard-only\s*:\s*([0-9.]+) ops\/s/)
  const listRls = number(/list RLS mode\s*:\s*([0-9.]+) ops\/s/)
  const listRatio = listRls / listGuard
  return {
    title: 'RLS mode (signed capability + policies)',
    rows: [
      {
        group: 'INSERT (group column)',
        name: 'RLS mode: signed capability + forced policies, runtime role',
        ops: rls,
        baseline: 'guard-only (guardedInsert, no RLS)',
        baselineOps: guard,
        ratio,
      },
      {
        group: 'SELECT, 50 rows of one group (group column)',
        name: 'RLS mode: signed capability + forced policies, runtime role',
        ops: listRls,
        baseline: 'guard-only (guardedSelect, no RLS)',
        baselineOps: listGuard,
        ratio: listRatio,
      },
    ],
    goals: [
      // Three decimals: a ratio just under the goal must not print as the goal itself.
      { goal: 'RLS mode ≥ 0.70× guard-only', measured: `${ratio.toFixed(3)}×`, met: ratio >= 0.7 },
      {
        goal: 'issue 20: RLS mode ≥ 0.85× guard-only, single-row INSERT',
        measured: `${ratio.toFixed(3)}×`,
        met: ratio >= 0.85,
      },
      {
        goal: 'issue 20: RLS mode ≥ 0.85× guard-only, 50-row list',
        measured: `${listRatio.toFixed(3)}×`,
        met: listRatio >= 0.85,
      },
    ],
    notes: [
      'Measured by bench/rls.bench.ts (engineer D1), run as a child process against the same server: interleaved rounds, ratio of total throughput.',
      stdout.trim().split('\n')[0] ?? '',
    ],
  }
}

function runScript(part: Part, serverUrl: string, quick: boolean): Promise<BenchSection> {
  const script = part.script!
  const file = fileURLToPath(new URL(part.module, import.meta.url))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      env: { ...process.env, DATABASE_URL: serverUrl, ...script.env(quick) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      const reason = /^(?:\w*Error|error): .*$/m.exec(stderr)?.[0] ?? stderr.trim().split('\n')[0]
      let section: BenchSection
      try {
        section = script.parse(stdout)
      } catch (error) {
        reject(code === 0 ? error : new Error(`${part.module} exited with ${code} (${reason})`))
        return
      }
      // Figures printed, then a failure (e.g. while cleaning up): keep them, and say so.
      if (code !== 0) {
        section = {
          ...section,
          notes: [
            ...(section.notes ?? []),
            `${part.module} exited with ${code} after printing its figures (${reason}).`,
          ],
        }
      }
      resolve(section)
    })
  })
}

const PARTS: readonly Part[] = [
  {
    title: 'Token → capability (verify + derive)',
    module: './verify.bench.ts',
    owner: 'engineer A',
  },
  { title: 'Capability derivation', module: './derive.bench.ts', owner: 'bench' },
  { title: 'Token size', module: './token-size.bench.ts', owner: 'bench' },
  { title: 'SQL guard cost', module: './sql.bench.ts', owner: 'bench' },
  { title: 'Paginated list', module: './paginated.bench.ts', owner: 'filters' },
  {
    title: 'RLS mode (signed capability + policies)',
    module: './rls.bench.ts',
    owner: 'engineer D1',
    script: {
      env: (quick): Record<string, string> =>
        quick ? { BENCH_ROUNDS: '5', BENCH_OPS: '150' } : {},
      parse: parseRls,
    },
  },
  { title: 'HTTP', module: './http.bench.ts', owner: 'bench' },
  { title: 'Memory (verified-token cache)', module: './memory.bench.ts', owner: 'bench' },
  { title: 'Caches: FIFO vs LRU (lru-cache)', module: './cache.bench.ts', owner: 'tokens' },
  { title: 'Kysely layer (rls mode)', module: './kysely.bench.ts', owner: 'rawsql' },
  { title: 'Encrypted column', module: './encryption.bench.ts', owner: 'encrypt' },
]

/** Loads a part's module only when it exists and exports `run` (so a script is never executed). */
async function loadPart(part: Part): Promise<BenchModule | string> {
  const url = new URL(part.module, import.meta.url)
  const source = await readFile(url, 'utf8').catch(() => undefined)
  if (source === undefined)
    return `bench/${part.module.slice(2)} (${part.owner}) has not landed yet`
  if (!/export\s+(async\s+)?function\s+run\s*\(/.test(source)) {
    return `bench/${part.module.slice(2)} (${part.owner}) does not export run(context) yet`
  }
  return (await import(url.href)) as BenchModule
}

async function benchDatabase(serverUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query('DROP DATABASE IF EXISTS keyhole_bench WITH (FORCE)')
    await admin.query('CREATE DATABASE keyhole_bench')
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = '/keyhole_bench'
  return url.toString()
}

let stopping = false
process.on('uncaughtException', (error: Error & { code?: string }) => {
  if (stopping && error.code === '57P01') {
    process.stderr.write('  (a connection left open by a part was closed as the server stopped)\n')
    return
  }
  console.error(error)
  process.exit(1)
})

const started = Date.now()
let server: RunningPostgres | undefined
let serverUrl = process.env.DATABASE_URL
if (!serverUrl) {
  server = await startEmbeddedPostgres()
  serverUrl = server.url
}
const sections: BenchSection[] = []
let postgres = ''
try {
  const databaseUrl = await benchDatabase(serverUrl)
  const probe = new pg.Client({ connectionString: databaseUrl })
  await probe.connect()
  postgres = (await probe.query('SHOW server_version')).rows[0].server_version as string
  await probe.end()
  const context: BenchContext = {
    quick,
    databaseUrl,
    log: (line) => process.stderr.write(`  ${line}\n`),
  }
  for (const part of PARTS) {
    if (only && !only.some((name) => part.module === `./${name}.bench.ts`)) continue
    const t0 = Date.now()
    process.stderr.write(`# ${part.title}\n`)
    let section: BenchSection
    const loaded = await loadPart(part)
    try {
      if (typeof loaded !== 'string') section = await loaded.run(context)
      else if (part.script && !loaded.includes('not landed')) {
        section = await runScript(part, serverUrl, quick)
      } else section = { title: part.title, rows: [], pending: loaded }
    } catch (error) {
      section = { title: part.title, rows: [], pending: `failed: ${(error as Error).message}` }
    }
    sections.push(section)
    console.log(textTable(section))
    console.log(`(${((Date.now() - t0) / 1000).toFixed(0)} s)\n`)
  }
} finally {
  // A pool a part forgot to end sees its connections terminated (57P01) as the server stops:
  // that must not take the results down with it.
  stopping = true
  await server?.stop()
}

const info: RunInfo = {
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  command: quick ? 'npm run bench -- --quick' : 'npm run bench',
  node: process.version,
  postgres,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}`,
  seconds: (Date.now() - started) / 1000,
}
// A part that failed (a server answering non-2xx, a check that did not hold) fails the run.
const failed = sections.filter((s) => s.pending?.startsWith('failed'))
if (failed.length > 0) {
  process.exitCode = 1
  for (const s of failed) console.error(`FAILED: ${s.title}: ${s.pending}`)
}
if (only) {
  // A partial run is printed, never written over the last full or quick run's results.
  console.log(`--only ${only.join(',')}: results not written (${info.seconds.toFixed(0)} s)`)
  process.exit()
}
await mkdir(results, { recursive: true })
const scaling = sections.flatMap((s) => s.scaling ?? [])
const svg = scalingSvg(scaling, 'Guarded statement ÷ plain statement, 10⁵-row table')
const json = JSON.stringify({ ...info, sections }, null, 2) + '\n'
// latest.* is the last run of either mode; <mode>.* keeps the last run of each.
for (const [name, chart] of [
  ['latest', 'scaling.svg'],
  [info.mode, `scaling-${info.mode}.svg`],
] as const) {
  await writeFile(new URL(chart, results), svg)
  await writeFile(new URL(`${name}.json`, results), json)
  await writeFile(new URL(`${name}.md`, results), markdown(info, sections, chart))
}
console.log(
  `wrote bench/results/latest.{json,md}, scaling.svg and ${info.mode}.* (${info.seconds.toFixed(0)} s)`,
)
