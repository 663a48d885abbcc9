/**
 * `req.db` on a real PostgreSQL prepared by keyhole's setup. In 'rls' mode a request's statements
 * run in one transaction that commits BEFORE the response's first byte leaves (a COMMIT that
 * fails answers an error, never the handler's success) and rolls back on a 4xx/5xx, a thrown
 * error or a client that went away; the client always goes back to the pool with nothing of the
 * request's capability on it. `statementTransactions()` commits each statement alone.
 */
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Express, Request, Response } from 'express'
import type pg from 'pg'
import { requireRole, statementTransactions } from '../../plugins/express.ts'
import { BadRequest } from '../../src/errors.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import { bearer, mint, startApp } from './helpers/express-app.ts'

const k = await createKeyholeDatabase(t)
// Raises when a note with this body is committed: a COMMIT that fails after the handler succeeded.
await k.db.pool.query(`
  CREATE FUNCTION public.refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.body LIKE 'refused at commit%' THEN RAISE EXCEPTION 'refused at commit'; END IF;
    RETURN NULL;
  END $$;
  CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON public.notes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.refuse_at_commit();
`)

/** The runtime role's pool (the teardown's forced DROP DATABASE is expected on it). */
function runtimePool(max = 2): pg.Pool {
  const pool = k.runtimePool(max)
  pool.on('error', () => {})
  return pool
}

async function count(body: string): Promise<number> {
  const { rows } = await k.db.pool.query('SELECT count(*)::int AS n FROM notes WHERE body = $1', [
    body,
  ])
  return (rows[0] as { n: number }).n
}

/** Every client back in the pool, none waiting. */
async function settled(pool: pg.Pool): Promise<void> {
  while (pool.idleCount !== pool.totalCount || pool.waitingCount > 0) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

interface NoteBody {
  group: string
  bodies: string[]
  fail?: 'throw' | '400'
  stream?: boolean
  writeHead?: boolean
}

/** POST /notes writes `bodies`, then fails or answers as asked; GET /notes reads. */
function routes(app: Express) {
  app.get('/notes', async (req, res) => {
    const notes = await req.db.select('notes', {}, { orderBy: [['id', 'asc']] })
    res.json(notes.map((note) => note.body))
  })
  const write = async (req: Request, res: Response) => {
    const { group, bodies, fail, stream, writeHead } = req.body as NoteBody
    for (const body of bodies) {
      await req.db.insert('notes', {
        group_id: group,
        owner: req.requireCapability().subject,
        body,
      })
    }
    if (fail === 'throw') throw new BadRequest()
    if (fail === '400') return void res.status(400).json({ refused: true })
    if (writeHead === true) res.writeHead(201, { 'content-type': 'text/plain' })
    if (stream === true || writeHead === true) {
      res.write('written ')
      return void res.end('twice')
    }
    res.status(201).json({ ok: true })
  }
  app.post('/notes', requireRole('member'), write)
  app.post('/statement/notes', statementTransactions(), write)
  app.post(
    '/late/notes',
    async (req, _res, next) => {
      await req.db.select('notes')
      next()
    },
    statementTransactions(),
    write,
  )
  app.get('/touch', (req, res) => {
    // The handle alone opens nothing: no statement, no transaction, no round trip.
    res.json(typeof req.db.select)
  })
  app.get('/open', async (_req, res) => void res.json(await _req.db.select('notes')))
}

const alice = bearer(
  await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] }),
)

t.test("'rls': committed with a success, rolled back on 4xx and thrown errors", async (t) => {
  const pool = runtimePool()
  const { request } = await startApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  const post = (bodies: string[], extra: Partial<NoteBody> = {}) =>
    request('POST', '/notes', alice, { group: k.groupA, bodies, ...extra })
  t.equal((await post(['kept 1', 'kept 2'])).status, 201)
  t.same([await count('kept 1'), await count('kept 2')], [1, 1])
  t.equal((await post(['thrown 1', 'thrown 2'], { fail: 'throw' })).status, 400)
  t.same([await count('thrown 1'), await count('thrown 2')], [0, 0], 'a thrown error rolls back')
  t.equal((await post(['refused'], { fail: '400' })).status, 400)
  t.equal(await count('refused'), 0, 'a 4xx answer rolls back')
  const denied = await request('POST', '/notes', alice, { group: k.groupB, bodies: ['elsewhere'] })
  t.equal(denied.status, 404, 'group B is invisible to alice: answered as a missing row')
  t.equal(denied.json.code, 'KH_NOT_FOUND')
  const streamed = await post(['streamed'], { stream: true })
  t.equal(streamed.text, 'written twice', 'writes held until COMMIT are sent in order')
  t.equal(await count('streamed'), 1)
  t.same((await request('GET', '/notes', alice)).json, ['a', 'kept 1', 'kept 2', 'streamed'])
  t.equal((await request('GET', '/touch', alice)).json, 'function')
  await settled(pool)
})

t.test('a COMMIT that fails answers an error, never the success, and writes nothing', async (t) => {
  const pool = runtimePool()
  const { request, logger } = await startApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  const response = await request('POST', '/notes', alice, {
    group: k.groupA,
    bodies: ['refused at commit'],
  })
  t.equal(response.status, 500)
  t.same(response.json, {
    statusCode: 500,
    error: 'Internal Server Error',
    message: 'Internal Server Error',
  })
  t.equal(response.headers.get('content-type'), 'application/json; charset=utf-8')
  t.equal(await count('refused at commit'), 0)
  t.match(logger.lines, [
    {
      level: 'error',
      details: { err: { message: 'refused at commit' } },
      message: 'keyhole: the request transaction did not commit',
    },
  ])

  const streamed = await request('POST', '/notes', alice, {
    group: k.groupA,
    bodies: ['refused at commit, streamed'],
    stream: true,
  })
  t.equal(streamed.status, 500, 'nothing the handler wrote leaves')
  t.notMatch(streamed.text, 'written')

  // After an explicit writeHead(201) the status line is fixed: the response is broken instead.
  await t.rejects(
    request('POST', '/notes', alice, {
      group: k.groupA,
      bodies: ['refused at commit, head written'],
      writeHead: true,
    }),
  )
  t.equal(await count('refused at commit, head written'), 0)
  await settled(pool)
})

t.test('a swallowed SQL error, or a refused capability, is never a success', async (t) => {
  const routesWith = (app: Express) => {
    app.post('/swallow', async (req, res) => {
      // An SQL error aborts the transaction; the handler hides it and claims success.
      await req.db
        .insert('notes', { group_id: k.groupA, owner: 'alice', body: 'a\u0000b' })
        .catch(() => undefined)
      res.status(201).json({ ok: true })
    })
    routes(app)
  }
  const pool = runtimePool()
  const { request } = await startApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    routesWith,
  )
  const swallowed = await request('POST', '/swallow', alice)
  t.equal(swallowed.status, 500, 'COMMIT answered ROLLBACK')
  t.notMatch(swallowed.text, 'ok')
  await settled(pool)

  // A wrong signing key: the database refuses the capability with the first statement.
  const wrongKey = Buffer.alloc(32, 7).toString('base64url')
  const other = runtimePool()
  const { request: refusedRequest } = await startApp(
    t,
    { database: { pool: other, policies: notesPolicies, signingKey: wrongKey }, checks: false },
    routesWith,
  )
  const refused = await refusedRequest('GET', '/notes', alice)
  t.equal(refused.status, 503)
  t.equal(refused.json.code, 'KH_UNAVAILABLE')
  t.notMatch(refused.text, 'signing key', 'the detail stays in the log')
  await settled(other)
})

t.test('a client that goes away rolls back; the client is released', async (t) => {
  const pool = runtimePool()
  let inserted: () => void = () => {}
  const insertedOnce = new Promise<void>((resolve) => (inserted = resolve))
  const { server } = await startApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    (app) => {
      app.post('/slow', async (req, res) => {
        await req.db.insert('notes', { group_id: k.groupA, owner: 'alice', body: 'aborted' })
        inserted()
        await once(res, 'close')
        // The statement after the abort is refused: the transaction has ended.
        await t.rejects(req.db.select('notes'), { message: /ended/ })
      })
    },
  )
  const port = (server.address() as AddressInfo).port
  const sent = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/slow',
    headers: alice,
  })
  sent.on('error', () => {})
  sent.end()
  await insertedOnce
  sent.destroy()
  await settled(pool)
  t.equal(await count('aborted'), 0)
})

t.test('every client goes back to the pool with no capability left on it', async (t) => {
  const pool = runtimePool(1)
  const { request } = await startApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  for (const extra of [
    {},
    { fail: 'throw' },
    { fail: '400' },
    { bodies: ['refused at commit 2'] },
  ]) {
    await request('POST', '/notes', alice, { group: k.groupA, bodies: ['released'], ...extra })
    await settled(pool)
    const { rows } = await pool.query(
      `SELECT coalesce(current_setting('keyhole.capability', true), '') AS setting`,
    )
    t.equal((rows[0] as { setting: string }).setting, '', JSON.stringify(extra))
  }
  t.equal((await request('GET', '/notes', alice)).status, 200, 'still serving')
})

t.test('statementTransactions(): each statement commits alone', async (t) => {
  const pool = runtimePool()
  const { request } = await startApp(
    t,
    { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  const post = (path: string, bodies: string[], fail?: string) =>
    request('POST', path, alice, { group: k.groupA, bodies, fail })
  t.equal((await post('/statement/notes', ['s1'])).status, 201)
  t.equal(await count('s1'), 1)
  t.equal((await post('/statement/notes', ['s2', 's3'], 'throw')).status, 400)
  t.same([await count('s2'), await count('s3')], [1, 1], 'a later failure undoes nothing')
  const late = await post('/late/notes', ['late'])
  t.equal(late.status, 500, 'too late once req.db was used')
  t.equal(late.json.code, 'KH_INVALID_OPTIONS')
  t.equal(await count('late'), 0)
  await settled(pool)
})

t.test('req.db without a capability answers 401, touching nothing', async (t) => {
  const { request } = await startApp(
    t,
    {
      database: { pool: runtimePool(1), policies: notesPolicies, signingKey: k.signingKey },
      checks: false,
      public: ['/open'],
    },
    routes,
  )
  const response = await request('GET', '/open')
  t.equal(response.status, 401)
  t.equal(response.json.code, 'KH_TOKEN_MISSING')
})

t.test("'guard' mode: statements on the pool, guarded by the statement", async (t) => {
  // The superuser pool bypasses RLS: what is seen is the statement guard's doing alone.
  const { request } = await startApp(
    t,
    { database: { pool: k.db.pool, policies: notesPolicies, mode: 'guard' }, checks: false },
    routes,
  )
  const notes = (await request('GET', '/notes', alice)).json as string[]
  t.ok(notes.includes('a') && !notes.includes('b'), "group A's notes only")
  t.equal(
    (await request('POST', '/statement/notes', alice, { group: k.groupA, bodies: ['g'] })).status,
    201,
  )
})
