/**
 * Where the RLS mode's database time goes (issue 20): COUNTS, not timings. Starts its own embedded
 * PostgreSQL with `track_functions = 'all'`, pg_stat_statements (`track = 'all'`, so the queries
 * inside keyhole's PL/pgSQL functions are counted too) and auto_explain (ANALYZE, VERBOSE), builds
 * the example app in RLS mode on it, and sends each guarded request N times through Fastify's
 * inject (the real routes, the real generated policies, the real session pipeline):
 *
 *   - POST /groups/:id/threads          single-row INSERT (inGroup guard)
 *   - GET  /groups/:id/threads          the 50-row list
 *   - POST /threads/:id/posts           INSERT through the parent guard (viaParent)
 *   - PATCH /threads/:id                UPDATE (or(and(isSubject, member), moderator))
 *   - DELETE /threads/:id               DELETE (moderator)
 *
 * and prints, per request: the calls of each keyhole function (pg_stat_user_functions, read after
 * the backends flushed their counters), the calls of each statement pg_stat_statements saw, and
 * the auto_explain plan of the guarded statement (InitPlan: once per statement; SubPlan: per row).
 * Timings printed here are indicative only; the counts are exact.
 *
 *   npm run bench:profile [-- --n 50] [--perf 2000]   (--perf: Linux perf on the backends)
 */
import { randomUUID } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { startEmbeddedPostgres } from '../dev/embedded-postgres.ts'
import { buildExampleApp } from './lib/example-app.ts'

const argN = process.argv.indexOf('--n')
const N = argN > 0 ? Number(process.argv[argN + 1]) : 50

/** `--perf <requests>`: also sample the runtime role's backends with Linux `perf` (when installed). */
const argPerf = process.argv.indexOf('--perf')
const PERF = argPerf > 0 ? Number(process.argv[argPerf + 1]) : 0

const logLines: string[] = []
const server = await startEmbeddedPostgres({
  settings: {
    shared_preload_libraries: 'pg_stat_statements,auto_explain',
    track_functions: 'all',
    'pg_stat_statements.track': 'all',
    'auto_explain.log_min_duration': '0',
    'auto_explain.log_analyze': 'on',
    'auto_explain.log_verbose': 'on',
    'auto_explain.log_timing': 'off',
    'auto_explain.log_nested_statements': 'off',
    log_min_messages: 'log',
  },
  onLog: (line) => logLines.push(line),
})
const root = new pg.Client({ connectionString: server.url })
await root.connect()
const database = 'keyhole_profile'
await root.query(`CREATE DATABASE ${database}`)
const dbUrl = new URL(server.url)
dbUrl.pathname = `/${database}`
const admin = new pg.Client({ connectionString: dbUrl.toString() })
await admin.connect()
const roles = { migration: 'profile_migrator', runtime: 'profile_app' }

try {
  await admin.query('CREATE EXTENSION pg_stat_statements')
  const { app, sign } = await buildExampleApp(dbUrl.toString(), roles)
  try {
    const { rows: groups } = await admin.query<{ id: string }>(
      `INSERT INTO groups (name) VALUES ('write'), ('read') RETURNING id`,
    )
    const [write, read] = groups.map((g) => g.id) as [string, string]
    await admin.query(
      `INSERT INTO discussion_threads (group_id, title, created_by)
       SELECT $1, 'seed ' || i, 'seed' FROM generate_series(1, 50) AS i`,
      [read],
    )
    const others = () =>
      Array.from({ length: 8 }, () => ({ group: randomUUID(), role: 'member' as const }))
    const member = await sign({
      sub: 'user-0',
      permissions: [{ group: write, role: 'member' }, { group: read, role: 'member' }, ...others()],
    })
    const moderator = await sign({
      sub: 'mod-0',
      permissions: [
        { group: write, role: 'moderator' },
        { group: read, role: 'member' },
        ...others(),
      ],
    })
    /** Threads in the write group by user-0, for the update, delete and parent-guard requests. */
    const threads = async (count: number) =>
      (
        await admin.query<{ id: string }>(
          `INSERT INTO discussion_threads (group_id, title, created_by)
           SELECT $1, 'target ' || i, 'user-0' FROM generate_series(1, $2) AS i RETURNING id`,
          [write, count],
        )
      ).rows.map((r) => r.id)

    interface Kind {
      name: string
      request: (i: number) => {
        method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
        url: string
        payload?: object
        token: string
      }
      status: number
      /** A substring of the guarded statement, to find its plan and its pg_stat_statements row. */
      statement: RegExp
    }
    const parent = (await threads(1))[0]!
    const toUpdate = await threads(N + 5)
    const toDelete = await threads(N + 5)
    const kinds: Kind[] = [
      {
        name: 'single-row INSERT (POST /groups/:id/threads)',
        request: () => ({
          method: 'POST',
          url: `/groups/${write}/threads`,
          payload: { title: 'hello' },
          token: member,
        }),
        status: 201,
        statement: /INSERT INTO .*discussion_threads/i,
      },
      {
        name: '50-row list (GET /groups/:id/threads)',
        request: () => ({ method: 'GET', url: `/groups/${read}/threads`, token: member }),
        status: 200,
        statement: /SELECT .*FROM .*discussion_threads/i,
      },
      {
        name: 'parent-guard INSERT (POST /threads/:id/posts)',
        request: () => ({
          method: 'POST',
          url: `/threads/${parent}/posts`,
          payload: { content: 'hi' },
          token: member,
        }),
        status: 201,
        statement: /INSERT INTO .*posts/i,
      },
      {
        name: 'UPDATE (PATCH /threads/:id, author + member)',
        request: (i) => ({
          method: 'PATCH',
          url: `/threads/${toUpdate[i]}`,
          payload: { title: 'renamed' },
          token: member,
        }),
        status: 200,
        statement: /UPDATE .*discussion_threads/i,
      },
      {
        name: 'DELETE (DELETE /threads/:id, moderator)',
        request: (i) => ({ method: 'DELETE', url: `/threads/${toDelete[i]}`, token: moderator }),
        status: 204,
        statement: /DELETE FROM .*discussion_threads/i,
      },
    ]

    const send = async (kind: Kind, i: number) => {
      const { method, url, payload, token } = kind.request(i)
      const response = await app.inject({
        method,
        url,
        ...(payload ? { payload } : {}),
        headers: { authorization: `Bearer ${token}` },
      })
      if (response.statusCode !== kind.status) {
        throw new Error(`${kind.name}: ${response.statusCode} ${response.body}`)
      }
    }
    const functionCalls = async () => {
      await admin.query('SELECT pg_stat_clear_snapshot()')
      const { rows } = await admin.query<{ name: string; calls: string; total: number }>(
        `SELECT schemaname || '.' || funcname AS name, calls, total_time AS total
         FROM pg_stat_user_functions WHERE schemaname = 'keyhole'`,
      )
      return new Map(rows.map((r) => [r.name, { calls: Number(r.calls), total: r.total }]))
    }

    // A backend flushes its function counters when idle, at most every 10 s (PGSTAT_IDLE_INTERVAL
    // while it flushed less than a second ago): wait that long before reading them.
    const flushed = async () => {
      await sleep(11_000)
      return functionCalls()
    }
    // Warm-up: every statement parsed once on the connection the requests use.
    for (const kind of kinds) await send(kind, N)
    let before = await flushed()
    const report: string[] = []
    for (const kind of kinds) {
      await admin.query('SELECT pg_stat_statements_reset()')
      logLines.length = 0
      for (let i = 0; i < N; i++) await send(kind, i)
      const after = await flushed()
      const explained = logLines.join('')
      report.push(`## ${kind.name}: ${N} requests`, '')
      report.push('| keyhole function | calls per request | ms per request (indicative) |')
      report.push('|---|---:|---:|')
      for (const [name, a] of [...after].sort(([x], [y]) => x.localeCompare(y))) {
        const b = before.get(name) ?? { calls: 0, total: 0 }
        const calls = a.calls - b.calls
        if (calls === 0) continue
        report.push(
          `| ${name} | ${(calls / N).toFixed(2)} | ${((a.total - b.total) / N).toFixed(3)} |`,
        )
      }
      const { rows: statements } = await admin.query<{
        query: string
        calls: string
        toplevel: boolean
        ms: number
      }>(
        `SELECT query, calls, toplevel, total_exec_time AS ms FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query !~* 'pg_stat_statements_reset|pg_stat_clear_snapshot|pg_stat_user_functions'
         ORDER BY calls DESC, query`,
      )
      report.push('', '| statement (pg_stat_statements) | top level | calls per request |')
      report.push('|---|---|---:|')
      // The monitor's periodic checks (fewer than one call per request) are not the request's.
      for (const s of statements.filter((s) => Number(s.calls) >= N)) {
        const text = s.query.replace(/\s+/g, ' ').replaceAll('|', '\\|')
        report.push(
          `| \`${text.length > 140 ? text.slice(0, 140) + '…' : text}\` | ${s.toplevel ? 'yes' : 'no'} | ${(Number(s.calls) / N).toFixed(2)} |`,
        )
      }
      // The last plan auto_explain logged for the guarded statement.
      const plans = explained.split(/(?=LOG:\s+duration:)/).filter((p) => kind.statement.test(p))
      const plan = plans.at(-1)
      report.push('', '```')
      report.push(
        plan
          ? plan
              .split('\n')
              .filter((l) => l.trim() !== '')
              .map((l) => l.replace(/^.*?LOG:\s+/, ''))
              .filter((l) => !/^\d{4}-\d\d-\d\d /.test(l))
              .map((l) => (l.length > 300 ? l.slice(0, 300) + '…' : l))
              .join('\n')
          : '(auto_explain logged no plan for this statement)',
      )
      report.push('```', '')
      before = after
      process.stderr.write(`  profile: ${kind.name} done\n`)
    }
    if (PERF > 0) {
      // Fewer log lines to write while sampling.
      await admin.query(`ALTER SYSTEM SET auto_explain.log_min_duration = -1`)
      await admin.query('SELECT pg_reload_conf()')
      for (const kind of kinds.slice(0, 2)) {
        // The pool closes idle connections: open the one the requests will use, then sample it.
        await send(kind, 0)
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE usename = $1`,
          [roles.runtime],
        )
        const file = `/tmp/keyhole-profile-${process.pid}.perf`
        const perf = spawn(
          'perf',
          ['record', '-F', '1999', '-o', file, '-p', rows.map((r) => r.pid).join(',')],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        )
        let perfError = ''
        perf.stderr.on('data', (chunk: Buffer) => (perfError += chunk.toString()))
        const closed = new Promise((resolve) => {
          perf.on('close', resolve)
          perf.on('error', (error) => resolve((perfError += String(error))))
        })
        await sleep(500)
        for (let i = 0; i < PERF; i++) await send(kind, 0)
        perf.kill('SIGINT')
        await closed
        if (perfError.includes('rror')) report.push(`perf record: ${perfError.trim()}`)
        const top = spawnSync(
          'perf',
          [
            'report',
            '-i',
            file,
            '--stdio',
            '--no-children',
            '--sort',
            'symbol',
            '--percent-limit',
            '1',
          ],
          { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
        )
        // Self time only: the embedded server's binary has no frame pointers, so `-g` call chains
        // do not unwind (inclusive time would need `--call-graph dwarf`).
        report.push(`## perf: ${kind.name}, ${PERF} requests (self time by symbol, ≥ 1 %)`, '')
        report.push(
          '```',
          ...top.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')),
          '```',
          '',
        )
        rmSync(file, { force: true })
      }
    }
    const { rows: policies } = await admin.query<{
      tablename: string
      policyname: string
      cmd: string
      qual: string | null
      with_check: string | null
    }>(
      `SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies
       WHERE schemaname = 'public' ORDER BY tablename, policyname`,
    )
    report.push('## Installed policies (generated from example-app/policies.ts)', '')
    for (const p of policies) {
      report.push(`- ${p.tablename} ${p.policyname} (${p.cmd})`)
      if (p.qual) report.push(`  - USING ${p.qual.replace(/\s+/g, ' ')}`)
      if (p.with_check) report.push(`  - WITH CHECK ${p.with_check.replace(/\s+/g, ' ')}`)
    }
    console.log(report.join('\n'))
  } finally {
    await app.close()
  }
} finally {
  await admin.end()
  await root.end()
  await server.stop()
}
