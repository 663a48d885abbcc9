/**
 * Where one HTTP request's CPU goes (issue 20), server by server: starts its own embedded
 * PostgreSQL (pg_stat_statements with planning tracked), builds the HTTP part's servers on it
 * (`keyhole`: the example app in RLS mode; `jwt`: `@fastify/jwt` + hand-written SQL; `pgrst`: the
 * PostgREST-style server; `guard`: keyhole's 'guard' mode; `floor`), seeds the HTTP part's data
 * (bench/http.bench.ts) and, for each server in turn, `--rounds` times, sends `--requests` requests
 * of one route (100 users' tokens, `--concurrency` at a time through Fastify's `inject`, so no
 * socket work is counted) and prints per request: the server process's CPU (user + system), the
 * CPU of the PostgreSQL backends that served it (/proc: that server's role), and each statement's
 * calls, plans, planning and execution time (pg_stat_statements). CPU time, not throughput: it
 * moves much less than req/s with the load of a shared machine. `--cpu-prof <file>` writes a V8
 * CPU profile of the last round of the first server.
 *
 *   node --conditions=keyhole-source --import tsx bench/profile-http.ts \
 *     --servers keyhole,jwt --method GET [--requests 2000] [--rounds 3] [--cpu-prof file]
 *   --explain: print the plans (auto_explain ANALYZE VERBOSE) of two requests of the first server
 *   --socket S: instead of `inject`, listen on 127.0.0.1 and load each server for S seconds with
 *     the HTTP part's generator (autocannon in a child process, `--concurrency` connections), and
 *     print per request the CPU of the server process, its PostgreSQL backends, the generator and
 *     the rest of the machine (/proc/stat), with requests/s: where the real benchmark's time goes
 *   --threads N: N more threads in the group every token's holder writes to (in `public` and in
 *     `pgrst`), as the HTTP part's GET finds them after its POST rounds (~10⁴ in a quick run, ~2·10⁵
 *     in a full one): the posts' policies then look each post's thread up instead of hashing every
 *     visible thread
 */
import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { startEmbeddedPostgres } from '../dev/embedded-postgres.ts'
import { buildExampleApp } from './lib/example-app.ts'
import { cpuTicks } from './lib/proc.ts'
import { runChildJson } from './lib/child-json.ts'
import { floorApp, jwtApp, keyholeGuardApp, pgrstApp, seed, setUpPgrst } from './http.bench.ts'

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback
}
const names = arg('servers', 'keyhole,jwt').split(',')
const method = arg('method', 'GET') as 'GET' | 'POST'
const requests = Number(arg('requests', '2000'))
const rounds = Number(arg('rounds', '3'))
const concurrency = Number(arg('concurrency', '4'))
const profileFile = arg('cpu-prof', '')
const explain = process.argv.includes('--explain')
const moreThreads = Number(arg('threads', '0'))
const socketSeconds = Number(arg('socket', '0'))
const logLines: string[] = []

const server = await startEmbeddedPostgres({
  settings: {
    shared_preload_libraries: 'pg_stat_statements,auto_explain',
    'pg_stat_statements.track': 'all',
    'pg_stat_statements.track_planning': 'on',
    ...(explain
      ? {
          'auto_explain.log_min_duration': '0',
          'auto_explain.log_analyze': 'on',
          'auto_explain.log_verbose': 'on',
          'auto_explain.log_buffers': 'on',
          'auto_explain.log_nested_statements': 'on',
          log_min_messages: 'log',
        }
      : {}),
  },
  onLog: (line) => logLines.push(line),
})
const root = new pg.Client({ connectionString: server.url })
await root.connect()
await root.query('CREATE DATABASE keyhole_http_profile')
const url = new URL(server.url)
url.pathname = '/keyhole_http_profile'
const databaseUrl = url.toString()
const admin = new pg.Client({ connectionString: databaseUrl })
await admin.connect()
await admin.query('CREATE EXTENSION pg_stat_statements')

const runtimeRole = 'keyhole_bench_app'
const {
  app: keyhole,
  settings,
  sign,
} = await buildExampleApp(databaseUrl, {
  migration: 'keyhole_bench_migrator',
  runtime: runtimeRole,
})
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 })
const { rows: groups } = await pool.query<{ id: string }>(
  `INSERT INTO groups (name) VALUES ('write'), ('read') RETURNING id`,
)
const [write, read] = groups.map((g) => g.id) as [string, string]
await seed(pool, 'public', read)
await setUpPgrst(pool, read)
if (moreThreads > 0) {
  for (const schema of ['public', 'pgrst']) {
    await pool.query(
      `INSERT INTO ${schema}.discussion_threads (group_id, title, created_by, created_at)
       SELECT $1, 'hello', 'seed', now() - i * interval '1 ms' FROM generate_series(1, $2::integer) AS i`,
      [write, moreThreads],
    )
  }
  await pool.query('ANALYZE')
}
const servers: Record<string, () => Promise<FastifyInstance> | FastifyInstance> = {
  keyhole: () => keyhole,
  jwt: () => jwtApp(pool, settings),
  pgrst: () => pgrstApp(pool, settings),
  guard: () => keyholeGuardApp(pool, settings),
  floor: () => floorApp(pool),
}
const apps = new Map<string, FastifyInstance>()
for (const name of names) {
  const make = servers[name]
  if (make === undefined) throw new Error(`--servers: ${Object.keys(servers).join('|')}`)
  const app = await make()
  await app.ready()
  apps.set(name, app)
}
const tokens = await Promise.all(
  Array.from({ length: 100 }, (_, i) =>
    sign({
      sub: `user-${i}`,
      permissions: [
        { group: write, role: 'member' },
        { group: read, role: 'member' },
        ...Array.from({ length: 8 }, () => ({ group: randomUUID(), role: 'member' as const })),
      ],
    }),
  ),
)
const path = `/groups/${method === 'POST' ? write : read}/threads`
let sent = 0
async function send(app: FastifyInstance, count: number): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < count) {
      next++
      const response = await app.inject({
        method,
        url: path,
        headers: {
          authorization: `Bearer ${tokens[sent++ % tokens.length]}`,
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
        ...(method === 'POST' ? { payload: '{"title":"hello"}' } : {}),
      })
      if (response.statusCode >= 300) throw new Error(`${response.statusCode} ${response.body}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

async function backends(role: string): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
       AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND usename = $1`,
    [role],
  )
  return rows.map((r) => r.pid)
}
function ticks(pids: number[]): number {
  let sum = 0
  for (const pid of pids) {
    try {
      sum += cpuTicks(pid)
    } catch {
      // the backend ended
    }
  }
  return sum
}

const us = (x: number) => x.toFixed(0).padStart(6)

/** Each statement's calls, plans, planning and execution time per request (pg_stat_statements). */
async function printStatements(count: number): Promise<void> {
  const { rows } = await admin.query<{
    calls: string
    plans: string
    total_plan_time: number
    total_exec_time: number
    query: string
  }>(
    `SELECT calls, plans, total_plan_time, total_exec_time, query FROM pg_stat_statements
       WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND calls >= $1 / 2 ORDER BY total_exec_time + total_plan_time DESC`,
    [count],
  )
  console.log('  per request: calls plans plan-µs exec-µs statement (nested ones too)')
  for (const s of rows) {
    console.log(
      `  ${(Number(s.calls) / count).toFixed(2)} ${(Number(s.plans) / count).toFixed(2)} ${us((s.total_plan_time * 1000) / count)} ${us((s.total_exec_time * 1000) / count)}  ${s.query.replace(/\s+/g, ' ').slice(0, 120)}`,
    )
  }
}

/** A V8 CPU profile of this process (`--cpu-prof`), sampled every 100 µs. */
async function startProfile(): Promise<Session> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return session
}
async function stopProfile(session: Session): Promise<void> {
  const { profile } = await session.post('Profiler.stop')
  writeFileSync(profileFile, JSON.stringify(profile))
  session.disconnect()
}

if (explain) {
  const app = apps.get(names[0]!)!
  await send(app, 20)
  logLines.length = 0
  await send(app, 2)
  await new Promise((resolve) => setTimeout(resolve, 500))
  console.log(logLines.join('\n'))
} else {
  /** Busy jiffies of the whole machine (every CPU's user, nice, system, irq, softirq, steal). */
  const machineTicks = () => {
    const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .split(/\s+/)
      .map(Number)
    return user! + nice! + system! + irq! + softirq! + steal!
  }
  /** What one round of a server did: requests answered, and with `--socket` the generator's view. */
  type Round = { count: number; load?: { rps: number; cpuUs: number } }
  let drive: (name: string, app: FastifyInstance) => Promise<Round>
  if (socketSeconds > 0) {
    const urls = new Map<string, string>()
    for (const [name, app] of apps) urls.set(name, await app.listen({ host: '127.0.0.1', port: 0 }))
    type Load = { rps: number; non2xx: number; total: number; cpuUs: number }
    const load = async (name: string, duration: number): Promise<Round> => {
      const input = {
        url: urls.get(name)! + path,
        method,
        ...(method === 'POST' ? { body: '{"title":"hello"}' } : {}),
        tokens,
        connections: concurrency,
        duration,
      }
      const result = await runChildJson<Load>(new URL('./lib/load.ts', import.meta.url), { input })
      if (result.non2xx > 0) throw new Error(`${name}: ${result.non2xx} non-2xx responses`)
      return { count: result.total, load: result }
    }
    for (const name of apps.keys()) await load(name, 1)
    drive = (name) => load(name, socketSeconds)
  } else {
    for (const app of apps.values()) await send(app, 200)
    drive = async (_name, app) => {
      await send(app, requests)
      return { count: requests }
    }
  }
  for (let round = 0; round < rounds; round++) {
    for (const [name, app] of apps) {
      const role = name === 'keyhole' ? runtimeRole : 'postgres'
      await admin.query('SELECT pg_stat_statements_reset()')
      const pids = await backends(role)
      const pgBefore = ticks(pids)
      const profiling = profileFile !== '' && name === names[0] && round === rounds - 1
      const session = profiling ? await startProfile() : undefined
      const machineBefore = machineTicks()
      const cpuBefore = process.cpuUsage()
      const start = performance.now()
      const { count, load } = await drive(name, app)
      const ms = performance.now() - start
      const cpu = process.cpuUsage(cpuBefore)
      if (session !== undefined) await stopProfile(session)
      const machineUs = (machineTicks() - machineBefore) * 10_000
      // A backend the pool opened during the round (an idle one closed meanwhile) counts whole.
      const joined = (await backends(role)).filter((pid) => !pids.includes(pid))
      const pgUs = (ticks(pids) - pgBefore + ticks(joined)) * 10_000
      const nodeUs = cpu.user + cpu.system
      const where =
        load === undefined
          ? `per request node ${us(nodeUs / count)} µs, PostgreSQL ${us(pgUs / count)} µs, wall ${us((ms * 1000) / count)} µs`
          : `${load.rps.toFixed(0).padStart(5)} req/s; per request node ${us(nodeUs / count)} µs, PostgreSQL ${us(pgUs / count)} µs, generator ${us(load.cpuUs / count)} µs, rest ${us((machineUs - nodeUs - pgUs - load.cpuUs) / count)} µs`
      console.log(
        `${name} ${method} round ${round + 1}: ${where} (${pids.length}+${joined.length} backends)`,
      )
      if (round === rounds - 1) await printStatements(count)
    }
  }
}
for (const app of apps.values()) if (app !== keyhole) await app.close()
await keyhole.close()
await pool.end()
await admin.end()
await root.end()
await server.stop()
