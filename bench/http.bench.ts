/**
 * HTTP (autocannon, in a child process, against servers on 127.0.0.1; fixed connections and
 * duration): `POST /groups/:id/threads` and `GET /groups/:id/threads` through keyhole (the example
 * app), against
 *   - the floor: the same route with no authentication and a plain statement;
 *   - what a user would write without keyhole: `@fastify/jwt` plus a hand-written guarded
 *     statement;
 *   - what a team would otherwise deploy for two layers (issue 20), PostgREST-style: `@fastify/jwt`,
 *     the claims set per request with `set_config('request.jwt.claims', …, true)` in a transaction,
 *     and RLS policies reading them with `current_setting(…)::json` as Supabase documents, wrapped
 *     in `(select …)` as Supabase recommends; on a copy of the threads table in the schema `pgrst`,
 *     so its policies never mix with keyhole's.
 * With a population of 100 users (each sending many requests with the same token) and with a
 * new token on every request. The servers take turns in rounds whose order alternates (A B C …,
 * then … C B A), so that a drift of the shared machine or of the database (a checkpoint, the table
 * growing under the POSTs) weighs on every server alike; each ratio is the mean requests/s of all
 * rounds, and the note gives the lowest and highest ratio of a single round.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, {
  type FastifyInstance,
  type FastifyRequest,
  type RouteHandlerMethod,
} from 'fastify'
import fastifyJwt from '@fastify/jwt'
import pg from 'pg'
import { runChildJson } from './lib/child-json.ts'
import { buildExampleApp } from './lib/example-app.ts'
import type { TokenSettings } from '../example-app/tokens.ts'
import type { BenchContext, BenchRow, BenchSection, GoalResult } from './lib/types.ts'

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
/** The example's list (example-app/thread-list.ts): each thread with its posts' count and latest. */
const LIST_COLUMNS =
  't.id, t.title, t.group_id, t.created_by, t.created_at, a."postCount", a."lastPostAt"'
const activity = (schema: string) =>
  `LEFT JOIN LATERAL (SELECT count(*)::integer AS "postCount", max(p.created_at) AS "lastPostAt" ` +
  `FROM ${schema}.posts p WHERE p.thread_id = t.id) a ON TRUE`
const KEYHOLE = 'keyhole (example app)'
const GUARD_MODE = "keyhole, 'guard' mode (no RLS)"
const FLOOR = 'floor: no auth, plain SQL'
const JWT = '@fastify/jwt + hand-written SQL'
const PGRST = 'PostgREST-style RLS (claims JSON)'
/** PostgREST's `authenticated`: the role the request's transaction switches to. */
const PGRST_ROLE = 'keyhole_bench_pgrst_http'

/**
 * The PostgREST-style server's table and policies: the forum's threads table (same columns, check,
 * foreign key and index) in its own schema, RLS enabled, the claims read once per statement in the
 * `(select current_setting(…)::json …)` form Supabase recommends (an InitPlan, not a per-row call).
 */
export async function setUpPgrst(pool: pg.Pool, read: string): Promise<void> {
  const groups =
    `SELECT (p ->> 'group')::uuid FROM json_array_elements(` +
    `(SELECT current_setting('request.jwt.claims', true)::json -> 'permissions')) AS p ` +
    `WHERE p ->> 'role' IN ('member', 'moderator', 'admin')`
  await pool.query(`
    DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PGRST_ROLE}') THEN
        CREATE ROLE ${PGRST_ROLE} NOLOGIN;
      END IF;
    END $$;
    DROP SCHEMA IF EXISTS pgrst CASCADE;
    CREATE SCHEMA pgrst;
    CREATE TABLE pgrst.discussion_threads (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      group_id uuid NOT NULL REFERENCES public.groups (id),
      title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
      created_by text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON pgrst.discussion_threads (group_id, created_at DESC);
    CREATE TABLE pgrst.posts (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      thread_id uuid NOT NULL REFERENCES pgrst.discussion_threads (id) ON DELETE CASCADE,
      content text NOT NULL CHECK (length(content) BETWEEN 1 AND 10000),
      author text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON pgrst.posts (thread_id, created_at);
    GRANT USAGE ON SCHEMA pgrst TO ${PGRST_ROLE};
    GRANT SELECT, INSERT ON pgrst.discussion_threads TO ${PGRST_ROLE};
    GRANT SELECT ON pgrst.posts TO ${PGRST_ROLE};
    ALTER TABLE pgrst.discussion_threads ENABLE ROW LEVEL SECURITY;
    CREATE POLICY member_read ON pgrst.discussion_threads FOR SELECT TO ${PGRST_ROLE}
      USING (group_id IN (${groups}));
    CREATE POLICY member_insert ON pgrst.discussion_threads FOR INSERT TO ${PGRST_ROLE}
      WITH CHECK (group_id IN (${groups}));
    -- A post is readable with its thread: the threads' policy applies inside the EXISTS.
    ALTER TABLE pgrst.posts ENABLE ROW LEVEL SECURITY;
    CREATE POLICY member_read ON pgrst.posts FOR SELECT TO ${PGRST_ROLE}
      USING (EXISTS (SELECT 1 FROM pgrst.discussion_threads t WHERE t.id = thread_id));
  `)
  await seed(pool, 'pgrst', read)
}

/** The 50 threads `seed i` of the read group, `i % 4` posts on each (some none), in `schema`. */
export async function seed(pool: pg.Pool, schema: string, read: string): Promise<void> {
  await pool.query(
    `WITH threads AS (
       INSERT INTO ${schema}.discussion_threads (group_id, title, created_by)
       SELECT $1, 'seed ' || i, 'seed' FROM generate_series(1, 50) AS i RETURNING id, title)
     INSERT INTO ${schema}.posts (thread_id, content, author)
     SELECT t.id, 'post ' || j, 'seed' FROM threads t,
       generate_series(1, (substr(t.title, 6)::integer) % 4) AS j`,
    [read],
  )
}

/**
 * PostgREST-style: @fastify/jwt verifies the token; each request is a transaction that switches to
 * the role and sets the verified claims transaction-locally, then runs the statement, which the
 * RLS policies filter (four round trips, as PostgREST sends them). A row the insert policy refuses
 * (42501) answers 403, as PostgREST does.
 */
export async function pgrstApp(pool: pg.Pool, settings: Settings): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(fastifyJwt, {
    secret: settings.jwtSecret,
    verify: {
      allowedIss: settings.jwtIssuer,
      allowedAud: settings.jwtAudience,
      algorithms: ['HS256'],
    },
  })
  async function inTransaction<T>(claims: unknown, statement: pg.QueryConfig): Promise<T[]> {
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      await client.query({
        name: 'pgrst_claims',
        text: `SELECT set_config('role', '${PGRST_ROLE}', true), set_config('request.jwt.claims', $1, true)`,
        values: [JSON.stringify(claims)],
      })
      const { rows } = await client.query(statement)
      await client.query('COMMIT')
      return rows as T[]
    } catch (error) {
      await client.query('ROLLBACK')
      throw error
    } finally {
      client.release()
    }
  }
  app.post<{ Params: { groupId: string }; Body: { title: string } }>(
    '/groups/:groupId/threads',
    async (request, reply) => {
      const claims = await request.jwtVerify<{ sub: string }>()
      try {
        const rows = await inTransaction(claims, {
          name: 'pgrst_insert',
          text: `INSERT INTO pgrst.discussion_threads (group_id, title, created_by) VALUES ($1, $2, $3) RETURNING ${THREAD_COLUMNS}`,
          values: [request.params.groupId, request.body.title, claims.sub],
        })
        return reply.code(201).send(rows[0])
      } catch (error) {
        if ((error as { code?: string }).code === '42501') {
          return reply.code(403).send({ code: 'FORBIDDEN' })
        }
        throw error
      }
    },
  )
  app.get<{ Params: { groupId: string } }>('/groups/:groupId/threads', async (request) => {
    const claims = await request.jwtVerify()
    return inTransaction(claims, {
      name: 'pgrst_select',
      text:
        `SELECT ${LIST_COLUMNS} FROM pgrst.discussion_threads t ${activity('pgrst')} ` +
        `WHERE t.group_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
      values: [request.params.groupId],
    })
  })
  return app
}

interface Answer {
  status: number
  body: unknown
}

async function ask(url: string, method: 'GET' | 'POST', token: string): Promise<Answer> {
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
    },
    ...(method === 'POST' ? { body: JSON.stringify({ title: 'hello' }) } : {}),
  })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

interface ListedThread {
  group_id: string
  title: string
  postCount: number
  lastPostAt: string | null
}

/** `title:postCount`, or a mark when lastPostAt is not a time exactly when the thread has posts. */
const describe = (r: ListedThread) =>
  r.postCount > 0 === (typeof r.lastPostAt === 'string' && !isNaN(Date.parse(r.lastPostAt)))
    ? `${r.title}:${r.postCount}`
    : `${r.title}:bad lastPostAt ${r.lastPostAt}`

/**
 * Before any load: the servers answer the same tokens alike. A member's POST is 201 with the
 * thread it created, a member's GET the same 50 threads (titles, group, posts' count and latest),
 * a stranger's POST 403; a stranger's GET shows no row (keyhole answers 403 from requireRole, the
 * others an empty list).
 */
async function checkAnswers(
  urls: Record<string, string>,
  groups: { write: string; read: string },
  tokens: { member: string; stranger: string; sub: string },
): Promise<void> {
  const fail = (name: string, what: string, answer: Answer) => {
    throw new Error(
      `http: ${name} answered ${what} wrongly: ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`,
    )
  }
  for (const [name, url] of Object.entries(urls)) {
    const authenticated = name !== FLOOR
    const created = await ask(`${url}/groups/${groups.write}/threads`, 'POST', tokens.member)
    const thread = created.body as { group_id?: string; title?: string; created_by?: string }
    if (
      created.status !== 201 ||
      thread.group_id !== groups.write ||
      thread.title !== 'hello' ||
      thread.created_by !== (authenticated ? tokens.sub : 'anonymous')
    ) {
      fail(name, "a member's POST", created)
    }
    const list = await ask(`${url}/groups/${groups.read}/threads`, 'GET', tokens.member)
    const rows = list.body as ListedThread[]
    const listed = Array.isArray(rows) ? rows.map(describe).sort() : []
    // Each thread with its posts' count, and a last post time exactly when it has posts.
    const expected = Array.from({ length: 50 }, (_, i) => `seed ${i + 1}:${(i + 1) % 4}`).sort()
    if (
      list.status !== 200 ||
      listed.join() !== expected.join() ||
      rows.some((r) => r.group_id !== groups.read)
    ) {
      fail(name, "a member's GET", list)
    }
    if (!authenticated) continue
    const refused = await ask(`${url}/groups/${groups.write}/threads`, 'POST', tokens.stranger)
    if (refused.status !== 403) fail(name, "a stranger's POST", refused)
    const hidden = await ask(`${url}/groups/${groups.read}/threads`, 'GET', tokens.stranger)
    const leaked = hidden.status === 200 && Array.isArray(hidden.body) && hidden.body.length === 0
    if (!(name === KEYHOLE || name === GUARD_MODE ? hidden.status === 403 : leaked)) {
      fail(name, "a stranger's GET", hidden)
    }
  }
}

/** The floor: no authentication, a plain statement. */
export function floorApp(pool: pg.Pool): FastifyInstance {
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
      text:
        `SELECT ${LIST_COLUMNS} FROM public.discussion_threads t ${activity('public')} ` +
        `WHERE t.group_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
      values: [request.params.groupId],
    })
    return rows
  })
  return app
}

/** What a user writes without keyhole: @fastify/jwt and a hand-written guarded statement. */
export async function jwtApp(pool: pg.Pool, settings: Settings): Promise<FastifyInstance> {
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
        `SELECT ${LIST_COLUMNS} FROM public.discussion_threads t ${activity('public')} ` +
        `WHERE t.group_id = $1 AND t.group_id = ANY ($2::uuid[]) ` +
        `ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
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
 *
 * The example's list (example-app/thread-list.ts) is a Kysely query written for 'rls' mode, which
 * 'guard' mode refuses (500 `KH_UNGUARDED_SQL`: nothing conditions it there). This server keeps
 * the example's GET route (schema, `requireRole`, one-statement transaction) and swaps its handler
 * for the same statement, columns and aggregate with a guard fragment per table it reads, as
 * docs/own-sql.md says 'guard' mode must be written.
 */
export async function keyholeGuardApp(pool: pg.Pool, settings: Settings): Promise<FastifyInstance> {
  const { dataKeys, sql } = await import('keyhole')
  const { capabilities } = await import('keyhole/fastify')
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
    // The forum's groups hold an encrypted column: a key of this run (threads are not encrypted).
    database: { pool, policies, mode: 'guard', dataKeys: dataKeys({ current: randomBytes(32) }) },
    checks: false,
  })
  const list = async (request: FastifyRequest<{ Params: { groupId: string } }>) => {
    const threads = request.db.guard('discussion_threads', 'read', { alias: 't' })
    const posts = request.db.guard('posts', 'read', { alias: 'p' })
    const { rows } = await request.db.query<{ lastPostAt: Date | null }>(
      sql`SELECT t.id, t.title, t.group_id, t.created_by, t.created_at,
          a."postCount", a."lastPostAt"
        FROM discussion_threads t
        LEFT JOIN LATERAL (SELECT count(*)::integer AS "postCount", max(p.created_at) AS "lastPostAt"
          FROM posts p WHERE p.thread_id = t.id AND ${posts}) a ON TRUE
        WHERE t.group_id = ${request.params.groupId} AND ${threads}
        ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
    )
    return rows.map((row) => ({ ...row, lastPostAt: row.lastPostAt?.toISOString() ?? null }))
  }
  app.addHook('onRoute', (route) => {
    if (route.method === 'GET' && route.url === '/groups/:groupId/threads') {
      route.handler = list as RouteHandlerMethod
    }
  })
  await app.register(threadRoutes)
  return app
}

/** Which keyhole this process resolved (the keyhole-source condition: this repository's source). */
function keyholeSource(): string {
  const resolved = fileURLToPath(import.meta.resolve('keyhole'))
  return relative(fileURLToPath(new URL('..', import.meta.url)), resolved)
}

/** The JWT secret, issuer and audience every server of the part verifies (the example's). */
export type Settings = TokenSettings

export async function run(context: BenchContext): Promise<BenchSection> {
  const title = 'HTTP'
  const {
    app: keyhole,
    settings,
    sign: signToken,
  } = await buildExampleApp(context.databaseUrl, {
    migration: 'keyhole_bench_migrator',
    runtime: 'keyhole_bench_app',
  })
  const pool = new pg.Pool({ connectionString: context.databaseUrl, max: 10 })
  const servers: FastifyInstance[] = [keyhole]
  try {
    const { rows: groups } = await pool.query<{ id: string }>(
      `INSERT INTO groups (name) VALUES ('write'), ('read') RETURNING id`,
    )
    const [write, read] = groups.map((g) => g.id) as [string, string]
    await seed(pool, 'public', read)
    await setUpPgrst(pool, read)
    const floor = floorApp(pool)
    const jwt = await jwtApp(pool, settings)
    const guard = await keyholeGuardApp(pool, settings)
    const pgrst = await pgrstApp(pool, settings)
    servers.push(floor, jwt, guard, pgrst)
    const urls = {
      [KEYHOLE]: await listen(keyhole),
      [GUARD_MODE]: await listen(guard),
      [FLOOR]: await listen(floor),
      [JWT]: await listen(jwt),
      [PGRST]: await listen(pgrst),
    }
    const quick = context.quick
    const duration = quick ? 2 : 3
    const rounds = quick ? 1 : 4
    const permissions = () => [
      { group: write, role: 'member' as const },
      { group: read, role: 'member' as const },
      ...Array.from({ length: 8 }, () => ({ group: randomUUID(), role: 'member' as const })),
    ]
    const sign = (sub: string) => signToken({ sub, permissions: permissions() })
    const population = await Promise.all(Array.from({ length: 100 }, (_, i) => sign(`user-${i}`)))
    await checkAnswers(
      urls,
      { write, read },
      {
        member: population[0]!,
        sub: 'user-0',
        stranger: await signToken({
          sub: 'stranger',
          permissions: [{ group: randomUUID(), role: 'member' }],
        }),
      },
    )
    context.log('http: the five servers answer a member and a stranger alike')
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
        const warm = await load({
          url: `${url}/groups/${group}/threads`,
          method,
          ...(method === 'POST' ? { body: JSON.stringify({ title: 'hello' }) } : {}),
          tokens: population,
          connections: 10,
          duration: 1,
        })
        if (warm.non2xx > 0) {
          throw new Error(
            `http: ${name} answered ${warm.non2xx} of ${warm.total} warm-up requests (${method}) with non-2xx`,
          )
        }
      }
    }
    const rows: BenchRow[] = []
    const goals: GoalResult[] = []
    for (const scenario of scenarios) {
      const totals = new Map<string, LoadResult[]>()
      for (let r = 0; r < rounds; r++) {
        const order = Object.entries(urls)
        for (const [name, url] of r % 2 === 0 ? order : order.reverse()) {
          context.log(`http: ${scenario.route}, ${scenario.who}, ${name}`)
          const result = await load({
            url: `${url}/groups/${scenario.group}/threads`,
            method: scenario.method,
            ...(scenario.method === 'POST' ? { body: JSON.stringify({ title: 'hello' }) } : {}),
            tokens: scenario.tokens,
            connections: 10,
            duration,
          })
          // A row is a measurement of answered requests only: a server that answers anything but
          // 2xx under load (an error page is cheaper than the work) fails the part, loudly.
          if (result.non2xx > 0) {
            throw new Error(
              `http: ${name} answered ${result.non2xx} of ${result.total} requests with non-2xx under load (${scenario.method} ${scenario.who})`,
            )
          }
          totals.set(name, [...(totals.get(name) ?? []), result])
        }
      }
      const mean = (name: string) => {
        const results = totals.get(name)!
        return {
          rps: results.reduce((a, b) => a + b.rps, 0) / results.length,
          p99: Math.max(...results.map((x) => x.p99)),
          errors: results.reduce((a, b) => a + b.errors, 0),
        }
      }
      // The ratio of each round alone: how far one round's answer strays from the mean's.
      const spread = (measured: string, baseline: string) => {
        const ratios = totals.get(measured)!.map((k, r) => k.rps / totals.get(baseline)![r]!.rps)
        return rounds > 1
          ? `; rounds ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`
          : ''
      }
      for (const measured of [KEYHOLE, GUARD_MODE]) {
        const k = mean(measured)
        for (const baseline of [FLOOR, JWT, PGRST]) {
          const b = mean(baseline)
          const ratio = k.rps / b.rps
          rows.push({
            group: `${scenario.route}, ${scenario.who}`,
            name: measured,
            ops: k.rps,
            baseline,
            baselineOps: b.rps,
            ratio,
            note: `p99 ${k.p99} ms vs ${b.p99} ms${spread(measured, baseline)}${k.errors + b.errors > 0 ? `; errors/timeouts ${k.errors}/${b.errors}` : ''}`,
          })
          if (baseline === PGRST) {
            if (measured === KEYHOLE && scenario.who === '100 users') {
              goals.push({
                goal: `HTTP ${scenario.method} (${scenario.who}): keyhole (RLS mode) ≥ 1.5× ${PGRST}`,
                measured: `${ratio.toFixed(2)}×`,
                met: ratio >= 1.5,
              })
            }
          } else if (scenario.method === 'POST') {
            const floorGoal = baseline.startsWith('floor')
            const who = measured === KEYHOLE ? 'keyhole (RLS mode)' : "keyhole ('guard' mode)"
            goals.push({
              goal: `HTTP POST (${scenario.who}): ${who} ≥ ${floorGoal ? '0.85× the unauthenticated floor' : '1.0× @fastify/jwt + hand-written SQL'}`,
              measured: `${ratio.toFixed(2)}×`,
              met: ratio >= (floorGoal ? 0.85 : 1.0),
            })
          }
          if (baseline === JWT && measured === KEYHOLE && scenario.who === '100 users') {
            goals.push({
              goal: `HTTP ${scenario.method} (${scenario.who}): keyhole (RLS mode) ≥ 0.80× ${JWT} (issue 20)`,
              measured: `${ratio.toFixed(2)}×`,
              met: ratio >= 0.8,
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
        `autocannon in a child process, 10 connections, ${duration} s per run, ${rounds} round(s) of the five servers in turn, in an order that alternates (forward, then reversed), after a 1 s warm-up of each; ops/s = mean requests/s of the rounds; "rounds" in a note: the lowest and highest ratio of one round.`,
        `keyhole as loaded by this run: ${keyholeSource()} (one copy for every server: the example and the 'guard' mode server import it by its package name).`,
        "GET: every server answers the example's list (example-app/thread-list.ts): the 50 newest threads with each one's posts' count and latest post time (a lateral aggregate on posts; 0 to 3 posts per seeded thread). keyhole 'guard' mode runs it as its own SQL with a guard fragment per table (the example's Kysely list is 'rls'-only); the baselines by hand (PostgREST-style: a posts policy that reads through the threads' policy). Any non-2xx answer under load fails the part.",
        "keyhole (example app): token verification with its cache, requireRole, schema validation, the guarded statement with the signed capability in one round trip (the thread routes use `transaction: 'statement'`), RLS forced, as the runtime role. keyhole 'guard' mode: the same routes and token checks, the guarded statement alone, no RLS. The other three connect as the superuser with a 10-connection pool.",
        `${PGRST}: @fastify/jwt, then per request BEGIN; set_config('role', …, true) and set_config('request.jwt.claims', <the verified claims as JSON>, true); the statement on pgrst.discussion_threads, whose policies read (SELECT current_setting('request.jwt.claims', true)::json -> 'permissions') once per statement; COMMIT — four round trips on the superuser's pool, switched to a NOLOGIN role as PostgREST does. Before the load, every server is checked to answer a member's POST and GET and a stranger's POST and GET alike.`,
        'The database does the most work: on this 2-core machine PostgreSQL and the servers share the cores, so the RLS mode ratio is bounded by what set_capability and the policies cost in PostgreSQL per request (bench/rls.bench.ts).',
        'Tokens: HS256, 10 member permissions each. "A new token per request" cycles through a pre-signed list (if a run outlasts it, tokens repeat).',
      ],
    }
  } finally {
    for (const server of servers) await server.close()
    await pool.end()
  }
}
