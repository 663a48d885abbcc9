/**
 * `metrics()`: one counter object per keyhole instance, read as a frozen snapshot on
 * `fastify.keyhole`, on the Express middleware and on `createKeyhole`'s runner. Each test drives a
 * known number of each event (real PostgreSQL) and asserts the exact counts.
 */
import type { Express } from 'express'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { requireRole as expressRole } from '../../plugins/express.ts'
import { requireRole as fastifyRole } from '../../plugins/fastify.ts'
import { createKeyhole } from '../../src/db/create-keyhole.ts'
import { startMonitor } from '../../src/db/monitor.ts'
import type { DatabaseFinding } from '../../src/errors.ts'
import { createCounters, snapshot, type KeyholeMetrics } from '../../src/metrics.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import * as fastifyApp from '../plugins/helpers/app.ts'
import * as expressApp from '../plugins/helpers/express-app.ts'

const k = await createKeyholeDatabase(t)
const pool = k.runtimePool(4)
const { rows } = await k.db.pool.query<{ id: number }>(
  'SELECT id FROM notes WHERE group_id = $1 LIMIT 1',
  [k.groupB],
)
const noteB = rows[0]!.id

const options = {
  database: { pool, policies: notesPolicies, signingKey: k.signingKey },
  checks: false as const,
  cache: { max: 2 },
}

const zero: KeyholeMetrics = snapshot(createCounters())

type Send = (method: string, url: string, token?: string, body?: object) => Promise<Answer>
interface Answer {
  readonly status: number
  readonly body: unknown
}

interface Adapter {
  readonly name: string
  start(t: Test): Promise<{ send: Send; metrics: () => KeyholeMetrics }>
  mint(claims: Record<string, unknown>): Promise<string>
}

const adapters: Adapter[] = [
  {
    name: 'fastify',
    async start(t) {
      const { app } = await fastifyApp.buildApp(t, options, (app: FastifyInstance) => {
        app.get('/notes', async (request) => request.db.select('notes'))
        app.get('/count', async (request) => ({ n: await request.db.count('notes') }))
        app.get('/raw', async (request) => (await request.db.query('SELECT 1 AS one')).rows)
        app.post<{ Params: { groupId: string } }>(
          '/groups/:groupId/notes',
          async (request, reply) => {
            const owner = request.requireCapability().subject
            const row = { group_id: request.params.groupId, owner, body: 'x' }
            return reply.code(201).send(await request.db.insert('notes', row))
          },
        )
        app.patch<{ Params: { id: string } }>('/notes/:id', async (request) =>
          request.db.update('notes', { id: Number(request.params.id) }, { body: 'y' }),
        )
        app.delete<{ Params: { id: string } }>('/notes/:id', async (request, reply) => {
          await request.db.delete('notes', { id: Number(request.params.id) })
          return reply.code(204).send()
        })
        app.get('/admin', { preHandler: fastifyRole('admin') }, async () => ({ ok: true }))
        app.get('/mod', { preHandler: fastifyRole('moderator') }, async () => ({ ok: true }))
      })
      const send: Send = async (method, url, token, body) => {
        const response = await app.inject({
          method: method as 'GET',
          url,
          headers: token === undefined ? {} : fastifyApp.bearer(token),
          ...(body && { payload: body }),
        })
        return { status: response.statusCode, body: response.body ? response.json() : null }
      }
      return { send, metrics: () => app.keyhole.metrics() }
    },
    mint: (claims) => fastifyApp.mint(claims),
  },
  {
    name: 'express',
    async start(t) {
      const { request, keyhole } = await expressApp.startApp(t, options, (app: Express) => {
        app.get('/notes', async (req, res) => void res.json(await req.db.select('notes')))
        app.get('/count', async (req, res) => void res.json({ n: await req.db.count('notes') }))
        app.get('/raw', async (req, res) => void res.json((await req.db.query('SELECT 1')).rows))
        app.post('/groups/:groupId/notes', async (req, res) => {
          const owner = req.requireCapability().subject
          const row = { group_id: req.params.groupId, owner, body: 'x' }
          res.status(201).json(await req.db.insert('notes', row))
        })
        app.patch('/notes/:id', async (req, res) => {
          res.json(await req.db.update('notes', { id: Number(req.params.id) }, { body: 'y' }))
        })
        app.delete('/notes/:id', async (req, res) => {
          await req.db.delete('notes', { id: Number(req.params.id) })
          res.status(204).end()
        })
        app.get('/admin', expressRole('admin'), (_req, res) => void res.json('ok'))
        app.get('/mod', expressRole('moderator'), (_req, res) => void res.json('ok'))
      })
      const send: Send = async (method, url, token, body) => {
        const headers = token === undefined ? {} : expressApp.bearer(token)
        const answer = await request(method, url, headers, body)
        return { status: answer.status, body: answer.json }
      }
      return { send, metrics: () => keyhole.metrics() }
    },
    mint: (claims) => expressApp.mint(claims),
  },
]

for (const adapter of adapters) {
  t.test(
    `${adapter.name}: metrics() counts each decision, cache lookup and statement`,
    async (t) => {
      const { send, metrics } = await adapter.start(t)
      t.same(metrics(), zero, 'all zero before the first request')
      const mod = (sub: string) =>
        adapter.mint({ sub, permissions: [{ group: k.groupA, role: 'moderator' }] })
      const [a, b, c, m] = await Promise.all([mod('alice'), mod('bob'), mod('carol'), mod('mo')])
      const expectStatus = async (
        method: string,
        url: string,
        token: string | undefined,
        s: number,
      ) => {
        const answer = await send(method, url, token)
        t.equal(answer.status, s, `${method} ${url}`)
        return answer.body
      }
      await expectStatus('GET', '/notes', undefined, 401) // KH_TOKEN_MISSING; no cache lookup
      await expectStatus('GET', '/notes', `${a.slice(0, -4)}AAAA`, 401) // miss; KH_TOKEN_SIGNATURE
      await expectStatus('GET', '/notes', a, 200) // miss; select
      await expectStatus('GET', '/count', a, 200) // hit; count
      const row = (await expectStatus('POST', `/groups/${k.groupA}/notes`, a, 201)) as {
        id: number
      }
      await expectStatus('PATCH', `/notes/${row.id}`, a, 200) // hit; update
      await expectStatus('DELETE', `/notes/${row.id}`, a, 204) // hit; delete
      await expectStatus('DELETE', `/notes/${noteB}`, a, 404) // hit; delete; KH_NOT_FOUND
      await expectStatus('GET', '/admin', a, 403) // hit; KH_FORBIDDEN
      await expectStatus('GET', '/raw', a, 200) // hit; query, then the session reset
      const before = metrics()
      await expectStatus('GET', '/notes', b, 200) // miss
      await expectStatus('GET', '/notes', c, 200) // miss; evicts a (the cache holds 2)
      await expectStatus('GET', '/notes', a, 200) // miss; evicts b
      await expectStatus('GET', '/mod', m, 200) // miss; evicts c; the token and the role allowed
      const after = metrics()
      t.same(after, {
        decisions: {
          allowed: 13,
          refused: 4,
          refusedByCode: {
            KH_TOKEN_MISSING: 1,
            KH_TOKEN_SIGNATURE: 1,
            KH_NOT_FOUND: 1,
            KH_FORBIDDEN: 1,
          },
        },
        tokenCache: { hits: 7, misses: 6, evictions: 3 },
        statements: { insert: 1, select: 4, update: 1, delete: 2, count: 1, query: 1 },
        // The raw query's reset, and the 404's: the failed request's connection is reset and
        // destroyed, never reused.
        sessionsReset: 2,
        connectionsDestroyed: 1,
        monitor: { runs: 0, findings: 0 },
      })
      t.equal(before.tokenCache.evictions, 0, 'a snapshot does not move')
      t.equal(before.decisions.allowed, 8)
      for (const part of [
        after,
        after.decisions,
        after.decisions.refusedByCode,
        after.tokenCache,
      ]) {
        t.ok(Object.isFrozen(part), 'frozen')
      }
      t.ok(Object.isFrozen(after.statements) && Object.isFrozen(after.monitor), 'frozen')
      t.not(metrics(), after, 'a new snapshot each call')
    },
  )
}

t.test(
  'createKeyhole: metrics() counts run’s statements, resets and destroyed connections',
  async (t) => {
    const keyhole = createKeyhole({ pool, policies: notesPolicies, signingKey: k.signingKey })
    t.same(keyhole.metrics(), zero)
    const alice = keyhole.capability({ subject: 'alice', groups: { moderator: [k.groupA] } })
    await keyhole.run(alice, async (db) => {
      const row = await db.insert<{ id: number }>('notes', {
        group_id: k.groupA,
        owner: 'alice',
        body: 'job',
      })
      await db.select('notes', { group_id: k.groupA })
      await db.count('notes')
      await db.update('notes', { id: row.id }, { body: 'job 2' })
      await db.delete('notes', { id: row.id })
    })
    await keyhole.run(alice, (db) => db.query('SELECT 1')) // your own SQL: the session is reset
    const failed = new Error('the job failed')
    await t.rejects(
      keyhole.run(alice, async (db) => {
        await db.select('notes')
        throw failed
      }),
      failed,
    ) // rolled back, reset, the connection destroyed
    t.same(keyhole.metrics(), {
      ...zero,
      statements: { insert: 1, select: 2, update: 1, delete: 1, count: 1, query: 1 },
      sessionsReset: 2,
      connectionsDestroyed: 1,
    })

    const guard = createKeyhole({ pool: k.db.pool, policies: notesPolicies, mode: 'guard' })
    await guard.run(alice, (db) => db.select('notes'))
    t.same(guard.metrics().statements, { ...zero.statements, select: 1 }, 'one object per keyhole')
  },
)

t.test('the monitor counts each run and its findings', async (t) => {
  const counters = createCounters()
  const finding: DatabaseFinding = Object.freeze({
    code: 'KH_DB_TABLE_PRIVILEGE',
    message: 'm',
    fix: 'f',
  })
  const results: (() => readonly DatabaseFinding[])[] = [
    () => [],
    () => [finding, finding],
    () => {
      throw new Error('down')
    },
    () => [],
  ]
  let i = 0
  const monitor = startMonitor({
    check: async () => (results[i++] as () => readonly DatabaseFinding[])(),
    intervalMs: false,
    logger: { fatal() {}, info() {} },
    counters,
  })
  t.teardown(() => monitor.stop())
  for (let run = 0; run < 4; run++) await monitor.check()
  // Two findings, then the check that could not run (one finding: KH_DB_CHECK_FAILED).
  t.same(snapshot(counters).monitor, { runs: 4, findings: 3 })
})

t.test('an adapter’s monitor: its runs and findings reach metrics()', async (t) => {
  const alive = setInterval(() => {}, 1000) // the monitor's timer is unref()ed
  t.teardown(() => clearInterval(alive))
  const { app } = await fastifyApp.buildApp(t, {
    database: options.database,
    checks: { migrationRole: k.migrator.name },
    monitor: { intervalMs: 20 },
  })
  const until = async (done: (m: KeyholeMetrics['monitor']) => boolean) => {
    while (!done(app.keyhole.metrics().monitor)) await new Promise((r) => setTimeout(r, 10))
    return app.keyhole.metrics().monitor
  }
  t.equal((await until((m) => m.runs >= 2)).findings, 0, 'passing runs: no finding')
  await k.db.pool.query(`GRANT TRUNCATE ON notes TO ${k.runtime.name}`)
  const broken = await until((m) => m.findings >= 2)
  await k.db.pool.query(`REVOKE TRUNCATE ON notes FROM ${k.runtime.name}`)
  const healthy = await until(() => app.keyhole.healthy)
  // One finding (the TRUNCATE privilege) on each run while it stood.
  t.ok(broken.runs >= 4, 'each run counted')
  t.ok(healthy.findings >= 2 && healthy.findings <= healthy.runs - 2, 'one finding per broken run')
  const later = await until((m) => m.runs >= healthy.runs + 2)
  t.equal(later.findings, healthy.findings, 'a passing run adds no finding')
})
