/**
 * A guarded statement that the database cannot serve answers with a stable code and the
 * catalogue's generic message on both adapters: 503 `KH_UNAVAILABLE` when the database cannot be
 * reached, 500 `KH_DATABASE_ERROR` for any other fault. The driver's message (which can name the
 * runtime role, a host or a table) never reaches the body.
 */
import t from 'tap'
import type { Test } from 'tap'
import express from 'express'
import Fastify from 'fastify'
import pg from 'pg'
import { definePolicies, inGroup } from '../../src/index.ts'
import { capabilities as fastifyKeyhole } from '../../plugins/fastify.ts'
import { capabilities as expressKeyhole, keyholeErrors } from '../../plugins/express.ts'
import { freePort } from '../../dev/free-port.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { G1, baseOptions, mint } from '../plugins/helpers/keyhole-app.ts'
import { memoryLogger, serve } from '../plugins/helpers/express-app.ts'

const policies = definePolicies({ notes: { read: inGroup('group_id', 'member') } })

async function fastifyAnswer(t: Test, pool: pg.Pool, token: string) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyKeyhole, {
    ...baseOptions,
    database: { pool, policies, mode: 'guard' },
    checks: false,
  })
  app.get('/notes', async (request) => request.db.select('notes', { group_id: G1 }))
  const res = await app.inject({ url: '/notes', headers: { authorization: `Bearer ${token}` } })
  return { status: res.statusCode, body: res.body }
}

async function expressAnswer(t: Test, pool: pg.Pool, token: string) {
  const keyhole = expressKeyhole({
    ...baseOptions,
    database: { pool, policies, mode: 'guard' },
    checks: false,
    logger: memoryLogger(),
  })
  const app = express()
  app.use(keyhole)
  app.get('/notes', async (req, res, next) => {
    try {
      res.json(await req.db.select('notes', { group_id: G1 }))
    } catch (error) {
      next(error)
    }
  })
  app.use(keyholeErrors())
  await keyhole.ready()
  t.teardown(() => keyhole.close())
  const { base } = await serve(t, app)
  const res = await fetch(`${base}/notes`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.text() }
}

const adapters = [
  ['fastify', fastifyAnswer],
  ['express', expressAnswer],
] as const

t.test('a database that cannot be reached answers 503 KH_UNAVAILABLE', async (t) => {
  const token = await mint({ permissions: [{ group: G1, role: 'member' }] })
  const port = await freePort()
  for (const [name, answer] of adapters) {
    const pool = new pg.Pool({
      connectionString: `postgres://kh_runtime:secret@127.0.0.1:${port}/nowhere`,
    })
    t.teardown(() => pool.end())
    const { status, body } = await answer(t, pool, token)
    t.equal(status, 503, name)
    t.same(
      JSON.parse(body),
      {
        statusCode: 503,
        error: 'Service Unavailable',
        message: 'Service unavailable',
        code: 'KH_UNAVAILABLE',
      },
      name,
    )
    t.notMatch(body, /ECONNREFUSED|127\.0\.0\.1|kh_runtime/, `${name}: nothing of the driver`)
  }
})

t.test('any other database fault answers 500 KH_DATABASE_ERROR, never its message', async (t) => {
  const token = await mint({ permissions: [{ group: G1, role: 'member' }] })
  const db = await createTestDatabase(t) // no table "notes": 42P01, whose message names it
  for (const [name, answer] of adapters) {
    const { status, body } = await answer(t, db.pool, token)
    t.equal(status, 500, name)
    t.same(
      JSON.parse(body),
      {
        statusCode: 500,
        error: 'Internal Server Error',
        message: 'Database error',
        code: 'KH_DATABASE_ERROR',
      },
      name,
    )
    t.notMatch(body, /notes|relation/, `${name}: nothing of the server's message`)
  }
})
