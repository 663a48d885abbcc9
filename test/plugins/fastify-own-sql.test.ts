/**
 * `request.db.query` through the Fastify plugin on a database prepared by keyhole's setup: in
 * 'rls' mode any SQL runs in the request's capability transaction (or alone per statement), where
 * the forced policies let it see and write only the capability's rows; in 'guard' mode only `sql`
 * that embeds the request's guard runs.
 */
import pg from 'pg'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { kysely } from '../../plugins/kysely.ts'
import { sql } from '../../src/sql/sql-tag.ts'
import { createKeyholeDatabase, notesPolicies as policies } from '../db/helpers/keyhole.ts'
import { bearer, buildApp, mint } from './helpers/app.ts'
import * as express from './helpers/express-app.ts'

const k = await createKeyholeDatabase(t)

async function count(body: string): Promise<number> {
  const { rows } = await k.db.pool.query('SELECT count(*)::int AS n FROM notes WHERE body = $1', [
    body,
  ])
  return (rows[0] as { n: number }).n
}

function routes(app: FastifyInstance) {
  for (const transaction of ['request', 'statement'] as const) {
    const config = { keyhole: { transaction } }
    app.get(`/${transaction}/notes`, { config }, async (request) => {
      const { rows } = await request.db.query<{ body: string }>(
        'SELECT body FROM notes ORDER BY id',
      )
      return rows.map((r) => r.body)
    })
    app.post<{ Body: { group: string; body: string; fail?: boolean } }>(
      `/${transaction}/notes`,
      { config },
      async (request, reply) => {
        const { group, body, fail } = request.body
        await request.db.query({
          text: 'INSERT INTO notes (group_id, owner, body) VALUES ($1, keyhole.subject(), $2)',
          values: [group, body],
        })
        if (fail === true) return reply.code(400).send({ refused: true })
        return reply.code(201).send({ ok: true })
      },
    )
  }
  app.get('/guarded', async (request) => {
    const guard = request.db.guard('notes', 'read', { alias: 'n' })
    const { rows } = await request.db.query<{ body: string }>(
      sql`SELECT n.body FROM notes n WHERE ${guard} ORDER BY n.id`,
    )
    return rows.map((r) => r.body)
  })
  app.get('/unguarded', async (request) => (await request.db.query('SELECT body FROM notes')).rows)
}

const alice = await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] })
const admin = await mint({ sub: 'root', permissions: [{ group: k.groupB, role: 'admin' }] })

t.test("'rls' mode: your own SQL sees and writes only the capability's rows", async (t) => {
  const pool = k.runtimePool(1)
  const { app } = await buildApp(
    t,
    { database: { pool, policies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  for (const transaction of ['request', 'statement']) {
    const get = (token: string) =>
      app.inject({ method: 'GET', url: `/${transaction}/notes`, headers: bearer(token) })
    const seen = (await get(alice)).json() as string[]
    t.ok(seen.includes('a') && !seen.includes('b'), `${transaction}: no WHERE, only alice's group`)
    t.same((await get(admin)).json().slice(0, 2), ['a', 'b'], `${transaction}: admin sees all`)
    const post = (group: string, body: string, fail?: boolean) =>
      app.inject({
        method: 'POST',
        url: `/${transaction}/notes`,
        headers: bearer(alice),
        payload: { group, body, fail },
      })
    const elsewhere = await post(k.groupB, `${transaction} elsewhere`)
    t.same(
      [elsewhere.statusCode, elsewhere.json().code],
      [404, 'KH_NOT_FOUND'],
      `${transaction}: the policy refuses a row in another group, answered as a missing row`,
    )
    t.notMatch(elsewhere.body, /row-level|notes|policy/, "the server's message is not sent")
    t.equal(await count(`${transaction} elsewhere`), 0, 'nothing written')
    t.equal((await post(k.groupA, `${transaction} own`)).statusCode, 201)
    t.equal(await count(`${transaction} own`), 1, 'written and committed')
    t.equal((await post(k.groupA, `${transaction} 400`, true)).statusCode, 400)
    t.equal(
      await count(`${transaction} 400`),
      transaction === 'request' ? 0 : 1,
      transaction === 'request'
        ? 'a 4xx answer rolls the request transaction back'
        : "'statement': committed with the statement",
    )
  }
  const guarded = await app.inject({ method: 'GET', url: '/guarded', headers: bearer(alice) })
  t.same(guarded.json().slice(0, 1), ['a'], 'a guard fragment works in rls mode too')
})

t.test("'guard' mode: only sql that embeds the request's guard", async (t) => {
  // A superuser pool bypasses RLS: what is seen is the statement's guard alone.
  const pool = new pg.Pool({ connectionString: k.db.url, max: 1 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  const { app } = await buildApp(
    t,
    { database: { pool, policies, mode: 'guard' }, checks: false },
    routes,
  )
  const refused = await app.inject({ method: 'GET', url: '/unguarded', headers: bearer(alice) })
  t.same([refused.statusCode, refused.json().code], [500, 'KH_UNGUARDED_SQL'])
  const guarded = await app.inject({ method: 'GET', url: '/guarded', headers: bearer(alice) })
  t.equal(guarded.statusCode, 200)
  t.notOk((guarded.json() as string[]).includes('b'), "never group B's note")
  t.ok((guarded.json() as string[]).includes('a'))
})

t.test('Express: req.db.query and kysely(req.db), the same handle', async (t) => {
  const pool = k.runtimePool(1)
  const { request } = await express.startApp(
    t,
    { database: { pool, policies, signingKey: k.signingKey }, checks: false },
    (app) => {
      app.get('/raw', async (req, res) => {
        res.json((await req.db.query<{ n: number }>('SELECT count(*)::int AS n FROM notes')).rows)
      })
      app.get('/kysely', async (req, res) => {
        const db = kysely<{ notes: { group_id: string } }>(req.db)
        res.json(await db.selectFrom('notes').select('group_id').distinct().execute())
      })
    },
  )
  const token = express.bearer(
    await express.mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] }),
  )
  const raw = await request('GET', '/raw', token)
  t.equal(raw.status, 200)
  const groupA = await k.db.pool.query('SELECT count(*)::int AS n FROM notes WHERE group_id = $1', [
    k.groupA,
  ])
  t.same(raw.json, groupA.rows, "count(*) without a WHERE counts group A's notes only")
  t.same((await request('GET', '/kysely', token)).json, [{ group_id: k.groupA }], 'only group A')
})
