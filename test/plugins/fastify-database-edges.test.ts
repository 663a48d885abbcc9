/**
 * The request transaction's edges, on a real PostgreSQL: a database that refuses the signed
 * capability answers 503; a COMMIT that turns into ROLLBACK (the handler swallowed an SQL error)
 * answers 500, never a false success; the handle is one per request and refuses statements after
 * the response; start-up checks that pass start the server (with or without the monitor).
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { and, inGroup, isSubject } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { createKeyholeDatabase, type KeyholeDatabase } from '../db/helpers/keyhole.ts'
import { bearer, buildApp, mint } from './helpers/app.ts'

const guards = {
  read: inGroup('group_id', 'member'),
  insert: and(inGroup('group_id', 'member'), isSubject('owner')),
  update: inGroup('group_id', 'moderator'),
  delete: inGroup('group_id', 'moderator'),
}
const policies = definePolicies({ notes: guards })

/** See fastify-database.test.ts: teardown terminates the pool's idle connections. */
function runtimePool(k: KeyholeDatabase, max = 2) {
  const pool = k.runtimePool(max)
  pool.on('error', () => {})
  return pool
}

// One database for the file: every app and pool of a test is closed before it is dropped.
const k = await createKeyholeDatabase(t)

t.test('edges of the request transaction', async (t) => {
  let late: unknown
  let sameHandle: boolean | undefined
  const routes = (app: FastifyInstance) => {
    app.get('/notes', async (request) => {
      sameHandle = request.db === request.db
      return (await request.db.select('notes')).length
    })
    app.get('/touch', async (request) => {
      // The handle alone opens nothing: no statement, no transaction, no round trip.
      return typeof request.db.select
    })
    app.post<{ Body: { group: string } }>('/swallow', async (request) => {
      // An SQL error aborts the transaction; the handler hides it and claims success.
      await request.db
        .insert('notes', { group_id: request.body.group, owner: 'alice', body: 'a\u0000b' })
        .catch(() => undefined)
      return { ok: true }
    })
    app.get('/late', async (request) => {
      await request.db.select('notes')
      return 'ok'
    })
    app.addHook('onResponse', async (request) => {
      if (request.url === '/late') late = await request.db.select('notes').catch((e: unknown) => e)
    })
  }
  const { app } = await buildApp(
    t,
    { database: { pool: runtimePool(k), policies, signingKey: k.signingKey }, checks: false },
    routes,
  )
  const alice = bearer(
    await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] }),
  )

  t.equal((await app.inject({ method: 'GET', url: '/touch', headers: alice })).body, 'function')

  const swallowed = await app.inject({
    method: 'POST',
    url: '/swallow',
    headers: alice,
    payload: { group: k.groupA },
  })
  t.equal(swallowed.statusCode, 500, 'a COMMIT that rolled back is not a success')
  t.notMatch(swallowed.body, 'ok')

  t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).body, '1')
  t.equal(sameHandle, true, 'request.db is one handle per request')

  t.equal((await app.inject({ method: 'GET', url: '/late', headers: alice })).statusCode, 200)
  t.match(late, { message: /ended/ }, 'no statement after the response')

  const wrongKey = Buffer.alloc(32, 7).toString('base64url')
  const { app: refused } = await buildApp(
    t,
    { database: { pool: runtimePool(k), policies, signingKey: wrongKey }, checks: false },
    routes,
  )
  const response = await refused.inject({ method: 'GET', url: '/notes', headers: alice })
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'KH_UNAVAILABLE')
  t.notMatch(response.body, 'signing key', 'the detail stays in the log')
})

t.test('start-up checks that pass start the server, with or without the monitor', async (t) => {
  // The policies the migration applied (see keyhole.ts): the checks compare them exactly.
  for (const monitor of [false, undefined] as const) {
    const { app } = await buildApp(t, {
      database: { pool: runtimePool(k), policies, signingKey: k.signingKey },
      checks: { migrationRole: k.migrator.name },
      ...(monitor === undefined ? {} : { monitor }),
    })
    t.equal(app.keyhole.healthy, true)
  }
})
