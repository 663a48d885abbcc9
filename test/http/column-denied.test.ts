/**
 * A statement naming a column the capability may read in no row answers 403 `KH_COLUMN_DENIED`
 * on both adapters, with the same body, before any SQL: the pool here points at a port where no
 * database listens, so a statement that ran would have answered 503 instead.
 */
import t from 'tap'
import type { Test } from 'tap'
import express from 'express'
import Fastify from 'fastify'
import pg from 'pg'
import { definePolicies, inGroup, type PolicyHandle } from '../../src/index.ts'
import { capabilities as fastifyKeyhole } from '../../plugins/fastify.ts'
import { capabilities as expressKeyhole, keyholeErrors } from '../../plugins/express.ts'
import { freePort } from '../../dev/free-port.ts'
import { G1, baseOptions, mint } from '../plugins/helpers/keyhole-app.ts'
import { memoryLogger, serve } from '../plugins/helpers/express-app.ts'

const policies = definePolicies({
  groups: {
    read: inGroup('id', 'member'),
    columns: { read: { member: ['id', 'name'], moderator: ['invite_code'] } },
  },
})
const lookUp = (db: PolicyHandle) => db.select('groups', { invite_code: 'guess' })

async function fastifyAnswer(t: Test, pool: pg.Pool, token: string) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyKeyhole, {
    ...baseOptions,
    database: { pool, policies, mode: 'guard' },
    checks: false,
  })
  app.get('/groups', async (request) => lookUp(request.db))
  const res = await app.inject({ url: '/groups', headers: { authorization: `Bearer ${token}` } })
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
  app.get('/groups', async (req, res, next) => {
    try {
      res.json(await lookUp(req.db))
    } catch (error) {
      next(error)
    }
  })
  app.use(keyholeErrors())
  await keyhole.ready()
  t.teardown(() => keyhole.close())
  const { base } = await serve(t, app)
  const res = await fetch(`${base}/groups`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.text() }
}

t.test('403 KH_COLUMN_DENIED, the same body on fastify and express, no SQL', async (t) => {
  const token = await mint({ permissions: [{ group: G1, role: 'member' }] })
  const port = await freePort()
  const pool = new pg.Pool({ connectionString: `postgres://nobody:x@127.0.0.1:${port}/nowhere` })
  t.teardown(() => pool.end())
  const expected = {
    statusCode: 403,
    error: 'Forbidden',
    message: 'The capability may not read the column invite_code of groups',
    code: 'KH_COLUMN_DENIED',
  }
  for (const [name, answer] of [
    ['fastify', fastifyAnswer],
    ['express', expressAnswer],
  ] as const) {
    const { status, body } = await answer(t, pool, token)
    t.equal(status, 403, name)
    t.same(JSON.parse(body), expected, name)
  }
})
