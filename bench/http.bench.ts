/**
 * HTTP (autocannon, in a child process, against servers on 127.0.0.1; fixed connections and
 * duration): `POST /groups/:id/threads` and `GET /groups/:id/threads` through keyhole (the example
 * app), against
 *   - the floor: the same route with no authentication and a plain statement;
 *   - what a user would write without keyhole: `@fastify/jwt` plus a hand-written guarded
 *     statement.
 * With a population of 100 users (each sending many requests with the same token) and with a
 * new token on every request. The three servers take turns (A B C, A B C…).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { access } from 'node:fs/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import pg from 'pg'
import { runChildJson } from './lib/child-json.ts'
import type { BenchContext, BenchRow, BenchSection, GoalResult } from './lib/types.ts'

const PLUGIN = new URL('../plugins/fastify.ts', import.meta.url)
const LOAD = new URL('./lib/load.ts', import.meta.url)
const ROLES = ['member', 'moderator', 'admin']

interface LoadResult {
  rps: number
  p99: number
  non2xx: number
  errors: number
  total: number
}

function load(job: object): Promise<LoadResult> {
  return runChildJson<LoadResult>(LOAD, { input: job })
}

async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ host: '127.0.0.1', port: 0 })
}

const THREAD_COLUMNS = 'id, group_id, title, created_by, created_at'
const KEYHOLE = 'keyhole (example app)'
const GUARD_MODE = "keyhole, 'guard' mode (no RLS)"

/** The floor: no authentication, a plain statement. */
function floorApp(pool: pg.Pool): FastifyInstance {
  const app = Fastify({ logger: false })
  app.post<{ Params: { groupId: string }; Body: { title: string } }>(
    '/groups/:groupId/threads',
    async (request, reply) => {
      const { rows } = await pool.query({
        name: 'floor_insert',
        text: `INSERT INTO discussion_threads (group_id, title, created_by) VALUES ($1, $2, $3) RETURNING ${THREAD_COLUMNS}`,
        values: [request.params.groupId, request.body.title, 'anonymous'],
      })
      return reply.code(201).send(rows[0])
    },
  )
  app.get<{ Params: { groupId: string } }>('/groups/:groupId/threads', async (request) => {
    const { rows } = await pool.query({
      name: 'floor_select',
      text: `SELECT ${THREAD_COLUMNS} FROM discussion_threads WHERE group_id = $1 ORDER BY created_at DESC, id DESC`,
      values: [request.params.groupId],
    })
    return rows
  })
  return app
}

/** What a user writes without keyhole: @fastify/jwt and a hand-written guarded statement. */
async function jwtApp(pool: pg.Pool, settings: Settings): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(fastifyJwt, {
    secret: settings.jwtSecret,
    verify: {
      allowedIss: settings.jwtIssuer,
      allowedAud: settings.jwtAudience,
      algorithms: ['HS256'],
    },
  })
  const groupsOf = (payload: unknown) =>
    ((payload as { permissions?: { group: string; role: string }[] }).permissions ?? [])
      .filter((p) => ROLES.includes(p.role))
      .map((p) => p.group)
  app.post<{ Params: { groupId: string }; Body: { title: string } }>(
    '/groups/:groupId/threads',
    async (request, reply) => {
      const payload = await request.jwtVerify<{ sub: string }>()
      const { rows } = await pool.query({
        name: 'jwt_insert',
        text:
          `INSERT INTO discussion_threads (group_id, title, created_by) ` +
          `SELECT $1::uuid, $2, $3 WHERE $1::uuid = ANY ($4::uuid[]) RETURNING ${THREAD_COLUMNS}`,
        values: [request.params.groupId, request.body.title, payload.sub, groupsOf(payload)],
      })
      if (rows.length === 0) return reply.code(403).send({ code: 'FORBIDDEN' })
      return reply.code(201).send(rows[0])
    },
  )
  app.get<{ Params: { groupId: string } }>('/groups/:groupId/threads', async (request) => {
    const payload = await request.jwtVerify()
    const { rows } = await pool.query({
      name: 'jwt_select',
      text:
        `SELECT ${THREAD_COLUMNS} FROM discussion_threads ` +
        `WHERE group_id = $1 AND group_id = ANY ($2::uuid[]) ORDER BY created_at DESC, id DESC`,
      values: [request.params.groupId, groupsOf(payload)],
    })
    return rows
  })
  return app
}

/**
 * keyhole in 'guard' mode: the example app's routes and schemas, the token checked by keyhole, the
 * guarded statements on the pool; no signed capability, no RLS. The same pool as the other two
 * (the superuser's: it bypasses the RLS the example database forces), so this is the comparison
 * with `@fastify/jwt` + hand-written SQL that changes one thing: who writes the guard.
 */
async function keyholeGuardApp(pool: pg.Pool, settings: Settings): Promise<FastifyInstance> {
  const { capabilities } = await import('../plugins/fastify.ts')
  const { policies } = await import('../example-app/policies.ts')
  const { threadRoutes } = await import('../example-app/routes/threads.ts')
  const { sharedSchemas } = await import('../example-app/schemas.ts')
  const app = Fastify({
    logger: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  })
  for (const schema of sharedSchemas) app.addSchema(schema)
  await app.register(capabilities, {
    secret: settings.jwtSecret,
    algorithms: ['HS256'],
    issuer: settings.jwtIssuer,
    audience: settings.jwtAudience,
    database: { pool, policies, mode: 'guard' },
    checks: false,
  })
  await app.register(threadRoutes)
  return app
}

interface Settings {
  jwtSecret: string
  jwtIssuer: string
  jwtAudience: string
}

export async function run(context: BenchContext): Promise<BenchSection> {
  const title = 'HTTP'
  const plugin = await access(PLUGIN).then(
    () => true,
    () => false,
  )
  if (!plugin) {
    return {
      title,
      rows: [],
      pending: 'plugins/fastify.ts has not landed; the example app cannot start',
    }
  }
  const { build } = await import('../example-app/app.ts')
  const { signToken } = await import('../example-app/tokens.ts')
  const settings: Settings = {
    jwtSecret: randomBytes(32).toString('base64url'),
    jwtIssuer: 'keyhole-bench',
    jwtAudience: 'forum',
  }
  const keyhole = await build({
    databaseUrl: context.databaseUrl,
    ...settings,
    roles: { migration: 'keyhole_bench_migrator', runtime: 'keyhole_bench_app' },
  })
  const pool = new pg.Pool({ connectionString: context.databaseUrl, max: 10 })
  const servers: FastifyInstance[] = [keyhole]
  try {
    const { rows: groups } = await pool.query<{ id: string }>(
      `INSERT INTO groups (name) VALUES ('write'), ('read') RETURNING id`,
    )
    const [write, read] = groups.map((g) => g.id) as [string, string]
    await pool.query(
      `INSERT INTO discussion_threads (group_id, title, created_by)
       SELECT $1, 'seed ' || i, 'seed' FROM generate_series(1, 50) AS i`,
      [read],
    )
    const floor = floorApp(pool)
    const jwt = await jwtApp(pool, settings)
    const guard = await keyholeGuardApp(pool, settings)
    servers.push(floor, jwt, guard)
    const urls = {
      'keyhole (example app)': await listen(keyhole),
      [GUARD_MODE]: await listen(guard),
      'floor: no auth, plain SQL': await listen(floor),
      '@fastify/jwt + hand-written SQL': await listen(jwt),
    }
    const quick = context.quick
    const duration = quick ? 2 : 6
    const rounds = quick ? 1 : 2
    const permissions = () => [
      { group: write, role: 'member' as const },
      { group: read, role: 'member' as const },
      ...Array.from({ length: 8 }, () => ({ group: randomUUID(), role: 'member' as const })),
    ]
    const sign = (sub: string) => signToken(settings, { sub, permissions: permissions() })
    const population = await Promise.all(Array.from({ length: 100 }, (_, i) => sign(`user-${i}`)))
    // Enough fresh tokens for the fastest server to see each one at most once, or close to it.
    const fresh = await Promise.all(
      Array.from({ length: quick ? 6_000 : 24_000 }, (_, i) => sign(`fresh-${i}`)),
    )
    const scenarios = [
      {
        route: 'POST /groups/:id/threads',
        method: 'POST',
        group: write,
        tokens: population,
        who: '100 users',
      },
      {
        route: 'POST /groups/:id/threads',
        method: 'POST',
        group: write,
        tokens: fresh,
        who: 'a new token per request',
      },
      {
        route: 'GET /groups/:id/threads (50 rows)',
        method: 'GET',
        group: read,
        tokens: population,
        who: '100 users',
      },
      ...(quick
        ? []
        : [
            {
              route: 'GET /groups/:id/threads (50 rows)',
              method: 'GET',
              group: read,
              tokens: fresh,
              who: 'a new token per request',
            },
          ]),
    ] as const
    // Warm-up: JIT, prepared statements, pools and the token caches of every server.
    for (const [name, url] of Object.entries(urls)) {
      context.log(`http: warm-up, ${name}`)
      for (const [method, group] of [
        ['POST', write],
        ['GET', read],
      ] as const) {
        await load({
          url: `${url}/groups/${group}/threads`,
          method,
          ...(method === 'POST' ? { body: JSON.stringify({ title: 'hello' }) } : {}),
          tokens: population,
          connections: 10,
          duration: 1,
        })
      }
    }
    const rows: BenchRow[] = []
    const goals: GoalResult[] = []
    for (const scenario of scenarios) {
      const totals = new Map<string, LoadResult[]>()
      for (let r = 0; r < rounds; r++) {
        for (const [name, url] of Object.entries(urls)) {
          context.log(`http: ${scenario.route}, ${scenario.who}, ${name}`)
          const result = await load({
            url: `${url}/groups/${scenario.group}/threads`,
            method: scenario.method,
            ...(scenario.method === 'POST' ? { body: JSON.stringify({ title: 'hello' }) } : {}),
            tokens: scenario.tokens,
            connections: 10,
            duration,
          })
          totals.set(name, [...(totals.get(name) ?? []), result])
        }
      }
      const mean = (name: string) => {
        const results = totals.get(name)!
        return {
          rps: results.reduce((a, b) => a + b.rps, 0) / results.length,
          p99: Math.max(...results.map((x) => x.p99)),
          bad: results.reduce((a, b) => a + b.non2xx + b.errors, 0),
        }
      }
      for (const measured of [KEYHOLE, GUARD_MODE]) {
        const k = mean(measured)
        for (const baseline of ['floor: no auth, plain SQL', '@fastify/jwt + hand-written SQL']) {
          const b = mean(baseline)
          const ratio = k.rps / b.rps
          rows.push({
            group: `${scenario.route}, ${scenario.who}`,
            name: measured,
            ops: k.rps,
            baseline,
            baselineOps: b.rps,
            ratio,
            note: `p99 ${k.p99} ms vs ${b.p99} ms${k.bad + b.bad > 0 ? `; non-2xx/errors ${k.bad}/${b.bad}` : ''}`,
          })
          if (scenario.method === 'POST') {
            const floorGoal = baseline.startsWith('floor')
            const who = measured === KEYHOLE ? 'keyhole (RLS mode)' : "keyhole ('guard' mode)"
            goals.push({
              goal: `HTTP POST (${scenario.who}): ${who} ≥ ${floorGoal ? '0.85× the unauthenticated floor' : '1.0× @fastify/jwt + hand-written SQL'}`,
              measured: `${ratio.toFixed(2)}×`,
              met: ratio >= (floorGoal ? 0.85 : 1.0),
            })
          }
        }
      }
    }
    return {
      title,
      rows,
      goals,
      notes: [
        `autocannon in a child process, 10 connections, ${duration} s per run, ${rounds} round(s) of the four servers in turn after a 1 s warm-up of each; ops/s = mean requests/s.`,
        "keyhole (example app): token verification with its cache, requireRole, schema validation, the guarded statement with the signed capability in one round trip (the thread routes use `transaction: 'statement'`), RLS forced, as the runtime role. keyhole 'guard' mode: the same routes and token checks, the guarded statement alone, no RLS. The other three connect as the superuser with a 10-connection pool.",
        'The database does the most work: on this 2-core machine PostgreSQL and the servers share the cores, so the RLS mode ratio is bounded by what set_capability and the policies cost in PostgreSQL per request (bench/rls.bench.ts).',
        'Tokens: HS256, 10 member permissions each. "A new token per request" cycles through a pre-signed list (if a run outlasts it, tokens repeat).',
      ],
    }
  } finally {
    for (const server of servers) await server.close()
    await pool.end()
  }
}
