/**
 * The RLS POST's database cost, layer by layer (issue 20): the backend CPU of the example's POST as
 * keyhole sends it in 'rls' mode (`SELECT keyhole.set_capability($1)`, then the guarded INSERT …
 * RETURNING, in one pipeline with one Sync), built up one part at a time from the hand-written
 * INSERT. Each step runs in pgbench (one connection, `-M prepared`, `\startpipeline`), with
 * `synchronous_commit` off so that the WAL flush, which every server pays alike, does not blur the
 * parts; the CPU is the backend's own, read from /proc while it runs. Steps take turns in rounds;
 * the table gives each step's median and range, and what it adds to the step before.
 *
 * Its own embedded PostgreSQL and the example app's database: the statements and their parameters
 * are those of one real request (captured from the server's log), the capability signed again in
 * SQL for every round (the database accepts a value issued within the last minute).
 * The measurement-only steps replace keyhole's functions or policies on this throw-away database,
 * and are restored after each step: a set_capability that does not verify, readers that do not
 * check the seal. They are unsafe by design and exist nowhere else.
 * Needs `pgbench` on the PATH (Debian: postgresql-client).
 *
 *   node --conditions=keyhole-source --import tsx bench/profile-layers.ts [--rounds 8] [--seconds 4]
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import pg from 'pg'
import { startEmbeddedPostgres } from '../dev/embedded-postgres.ts'
import { buildExampleApp } from './lib/example-app.ts'
import { cpuTicks } from './lib/proc.ts'

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback
}
const rounds = Number(arg('rounds', '8'))
const seconds = Number(arg('seconds', '4'))
if (spawnSync('pgbench', ['--version']).status !== 0) {
  console.error(
    'profile-layers: pgbench is not on the PATH (Debian: apt-get install postgresql-client)',
  )
  process.exit(1)
}

const logLines: string[] = []
const server = await startEmbeddedPostgres({
  settings: { log_statement: 'all', log_min_messages: 'log' },
  onLog: (line) => logLines.push(line),
})
const root = new pg.Client({ connectionString: server.url })
await root.connect()
await root.query('CREATE DATABASE keyhole_layers')
const superUrl = new URL(server.url)
superUrl.pathname = '/keyhole_layers'
const runtimeRole = 'keyhole_layers_app'
const { app, sign } = await buildExampleApp(superUrl.toString(), {
  migration: 'keyhole_layers_migrator',
  runtime: runtimeRole,
})
const admin = new pg.Client({ connectionString: superUrl.toString() })
await admin.connect()
const group = (
  await admin.query<{ id: string }>(`INSERT INTO groups (name) VALUES ('write') RETURNING id`)
).rows[0]!.id

// One real request, as the HTTP part sends it (10 member groups), its statements from the log.
const token = await sign({
  sub: 'user-1',
  permissions: [
    { group, role: 'member' },
    ...Array.from({ length: 9 }, () => ({ group: randomUUID(), role: 'member' as const })),
  ],
})
await app.ready()
logLines.length = 0
const answer = await app.inject({
  method: 'POST',
  url: `/groups/${group}/threads`,
  headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  payload: '{"title":"hello"}',
})
if (answer.statusCode !== 201) {
  throw new Error(`the example answered ${answer.statusCode}: ${answer.body}`)
}
await app.close()
await new Promise((resolve) => setTimeout(resolve, 300))
// pgbench connects as the runtime role: a password of this run's own (after the app's pool closed).
const password = randomBytes(18).toString('base64url')
await admin.query(`ALTER ROLE ${runtimeRole} PASSWORD '${password}'`)
const runtimeUrl = new URL(superUrl)
runtimeUrl.username = runtimeRole
runtimeUrl.password = password
/**
 * The text and parameters of the logged statement that starts with `start` (`log_statement`: the
 * parameters follow on a DETAIL line, quoted, and may hold newlines).
 */
function captured(start: string): { text: string; parameters: string[] } {
  const log = logLines.join('')
  const at = log.indexOf(`: ${start}`)
  if (at < 0) throw new Error(`not in the log: ${start}`)
  const text = log.slice(at + 2, log.indexOf('\n', at)).trim()
  const detail = /DETAIL: {2}Parameters: ((?:\$\d+ = '(?:[^']|'')*'(?:, )?)+)/.exec(log.slice(at))
  const parameters = [...(detail?.[1] ?? '').matchAll(/\$\d+ = '((?:[^']|'')*)'/g)].map((m) =>
    m[1]!.replaceAll("''", "'"),
  )
  return { text, parameters }
}
const setCapability = captured('SELECT keyhole.set_capability(')
const insert = captured('INSERT INTO "discussion_threads"')
// The hand-written step sends the same values: the group, the title, the subject, the groups.
if (insert.parameters.length !== 4) {
  throw new Error(
    `profile-layers: the example's INSERT takes ${insert.parameters.length} values, not 4`,
  )
}
const numbered = (text: string) => text.replace(/\$(\d+)/g, ':p$1')
const handWritten =
  'INSERT INTO discussion_threads (group_id, title, created_by) SELECT :p1::uuid, :p2, :p3 ' +
  'WHERE :p1::uuid = ANY (:p4::uuid[]) RETURNING *'
const script = (first: string, second: string) =>
  `\\startpipeline\n${first};\n${second};\n\\endpipeline\n`

/** keyhole's own definitions, put back after every step. */
const definition = async (signature: string) =>
  (
    await admin.query<{ d: string }>(`SELECT pg_get_functiondef($1::regprocedure) AS d`, [
      signature,
    ])
  ).rows[0]!.d
const original = [
  await definition('keyhole.set_capability(text)'),
  await definition('keyhole.group_ids(text)'),
  await definition('keyhole.is_admin()'),
].join(';\n')
const { rows: policies } = await admin.query<{
  name: string
  qual: string | null
  check: string | null
}>(
  `SELECT policyname AS name, qual, with_check AS check FROM pg_policies
    WHERE tablename = 'discussion_threads' AND policyname IN ('keyhole_select', 'keyhole_insert')`,
)
/** A policy's expression as the example has it; the steps rewrite these two and put them back. */
const policy = (name: string, part: 'qual' | 'check') => {
  const expression = policies.find((p) => p.name === name)?.[part]
  if (expression == null)
    throw new Error(`profile-layers: no ${part} on ${name}: the example changed`)
  return expression
}
const restore =
  `${original};\n` +
  `ALTER POLICY keyhole_select ON discussion_threads USING (${policy('keyhole_select', 'qual')});\n` +
  `ALTER POLICY keyhole_insert ON discussion_threads WITH CHECK (${policy('keyhole_insert', 'check')})`
const setPolicies = (condition: string) =>
  `ALTER POLICY keyhole_select ON discussion_threads USING (${condition});
   ALTER POLICY keyhole_insert ON discussion_threads WITH CHECK (${condition})`
// set_capability as keyhole's sealed one, without the key read, the HMAC or the time checks.
const unverifiedSetCapability = `
  CREATE OR REPLACE FUNCTION keyhole.set_capability(signed text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DECLARE body bytea := pg_catalog.substr(pg_catalog.convert_to(signed, 'UTF8'), 65);
  BEGIN
    PERFORM pg_catalog.set_config('keyhole.capability', pg_catalog.convert_from(body, 'UTF8'), true);
    RETURN pg_catalog.set_config('backtrace_functions', 'keyhole_' || pg_catalog.pg_backend_pid()
      || '_' || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint
      || '_' || pg_catalog.substr(signed, 65, 28)
      || '_' || pg_catalog.encode(pg_catalog.sha256(body), 'hex'), true) IS NOT NULL;
  END $$`
// keyhole's readers without the seal's check: the body read back and parsed, nothing verified.
const unverifiedReaders = `
  CREATE OR REPLACE FUNCTION keyhole.group_ids(role text) RETURNS text[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DECLARE body text := pg_catalog.current_setting('keyhole.capability', true);
  BEGIN
    RETURN COALESCE((pg_catalog.split_part(body, E'\\n', 3)::text[])
      [1:(pg_catalog.split_part(body, E'\\n', 2)::integer[])[pg_catalog.array_position(
        pg_catalog.substr(pg_catalog.split_part(body, E'\\n', 1), 29)::text[], role)]], '{}');
  END $$;
  CREATE OR REPLACE FUNCTION keyhole.is_admin() RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  BEGIN
    RETURN COALESCE(pg_catalog.substr(pg_catalog.current_setting('keyhole.capability', true), 28, 1) = '1', false);
  END $$`

interface Step {
  readonly name: string
  readonly runtime: boolean
  readonly script: string
  readonly sql?: string
}
const capabilityCall = setCapability.text.replace('$1', ':capability')
/** The request as keyhole sends it: the capability, then the INSERT. */
const request = script(capabilityCall, numbered(insert.text))
const steps: Step[] = [
  {
    name: 'hand-written INSERT (superuser)',
    runtime: false,
    script: script('SELECT 1', handWritten),
  },
  {
    name: "keyhole's INSERT text (superuser)",
    runtime: false,
    script: script('SELECT 1', numbered(insert.text)),
  },
  {
    name: '+ set_capability without verifying (superuser)',
    runtime: false,
    script: request,
    sql: unverifiedSetCapability,
  },
  {
    name: '+ its verification: keyhole set_capability (superuser)',
    runtime: false,
    script: request,
  },
  {
    name: 'runtime role under RLS, policies true',
    runtime: true,
    script: request,
    sql: setPolicies('true'),
  },
  {
    name: 'policies: group_id in a constant list',
    runtime: true,
    script: request,
    sql: setPolicies(`group_id = ANY ('{${group}}'::uuid[])`),
  },
  {
    name: 'policies: readers without the seal check',
    runtime: true,
    script: request,
    sql: unverifiedReaders,
  },
  {
    name: 'keyhole (sealed readers)',
    runtime: true,
    script: request,
  },
]

/** The captured capability, issued again now and signed with the database's key. */
async function freshCapability(): Promise<string> {
  const { rows } = await admin.query<{ v: string }>(
    `SELECT pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to('a.' || b, 'UTF8'),
              k.inner_pad, k.outer_pad), 'hex') || b AS v
       FROM keyhole.signing_key AS k,
            (SELECT pg_catalog.lpad((EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint::text,
               15, '0') || pg_catalog.substr($1, 80) AS b) AS s`,
    [setCapability.parameters[0]],
  )
  return rows[0]!.v
}

/** One step for `seconds`: the backend's CPU µs per transaction. */
async function measure(step: Step): Promise<number> {
  await admin.query(restore)
  if (step.sql !== undefined) await admin.query(step.sql)
  const file = `/tmp/keyhole-layers-${process.pid}.pgb`
  writeFileSync(file, step.script)
  const args = ['-n', '-M', 'prepared', '-c', '1', '-T', String(seconds), '-f', file]
  args.push('-D', `capability=${await freshCapability()}`)
  insert.parameters.forEach((value, i) => args.push('-D', `p${i + 1}=${value}`))
  const url = step.runtime ? runtimeUrl : superUrl
  // The backend of this run's client only: the last run's may still be on its way out, and
  // pgbench opens a connection of its own first.
  const since = (await admin.query<{ since: Date }>('SELECT clock_timestamp() AS since')).rows[0]!
    .since
  const child = spawn('pgbench', [...args, url.toString()], {
    env: { ...process.env, PGOPTIONS: '-c synchronous_commit=off' },
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d))
  child.stderr.on('data', (d: Buffer) => (output += d))
  const ended = new Promise<number>((resolve) => child.on('close', resolve))
  let pid: number | undefined
  while (pid === undefined) {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'
          AND backend_type = 'client backend' AND backend_start >= $1
          AND query LIKE '%discussion_threads%'`,
      [since],
    )
    pid = rows[0]?.pid
  }
  let first: number
  try {
    first = cpuTicks(pid)
  } catch {
    await ended
    throw new Error(`pgbench, step "${step.name}" ended at once: ${output}`)
  }
  let last = first
  let running = true
  void ended.then(() => (running = false))
  while (running) {
    try {
      last = cpuTicks(pid)
    } catch {
      break // the backend ended
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const code = await ended
  const done = Number(/actually processed: (\d+)/.exec(output)?.[1] ?? 0)
  if (code !== 0 || done === 0 || /failed: [1-9]/.test(output)) {
    throw new Error(`pgbench, step "${step.name}": ${output}`)
  }
  return ((last - first) * 10_000) / done
}

const results = new Map<string, number[]>(steps.map((s) => [s.name, []]))
for (let round = 0; round < rounds; round++) {
  for (const step of round % 2 === 0 ? steps : [...steps].reverse()) {
    results.get(step.name)!.push(await measure(step))
  }
  console.error(`round ${round + 1} of ${rounds}`)
}
await admin.query(restore)

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
console.log(
  `backend CPU per POST, µs: median (range) of ${rounds} rounds × ${seconds} s, and what the step adds`,
)
let before: number | undefined
for (const step of steps) {
  const xs = results.get(step.name)!
  const m = median(xs)
  const added =
    before === undefined ? '' : `  ${m - before >= 0 ? '+' : ''}${(m - before).toFixed(0)}`
  console.log(
    `${step.name.padEnd(58)} ${m.toFixed(0).padStart(5)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})${added}`,
  )
  before = m
}
await admin.end()
await root.end()
await server.stop()
