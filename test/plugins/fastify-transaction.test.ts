/**
 * The route option `config.keyhole.transaction` in 'rls' mode: `'request'` (the default) commits a
 * request's statements together with the response; `'statement'` commits each statement alone, in
 * the round trip that runs it — what a route that writes once needs, and no more.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { BadRequest } from '../../src/errors.ts'
import { and, inGroup, isSubject } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { createKeyholeDatabase } from '../db/helpers/keyhole.ts'
import { bearer, buildApp, mint } from './helpers/app.ts'

const policies = definePolicies({
  notes: {
    read: inGroup('group_id', 'member'),
    insert: and(inGroup('group_id', 'member'), isSubject('owner')),
  },
})

const k = await createKeyholeDatabase(t)

async function count(body: string): Promise<number> {
  const { rows } = await k.db.pool.query('SELECT count(*)::int AS n FROM notes WHERE body = $1', [
    body,
  ])
  return (rows[0] as { n: number }).n
}

/** POST /:mode/notes writes `bodies` one after the other, then fails when asked to. */
function routes(app: FastifyInstance) {
  // Writes, then answers on the raw response: Fastify runs no onSend hook, only onResponse.
  app.post<{ Body: { group: string } }>('/request/hijacked', async (request, reply) => {
    await request.db.insert('notes', { group_id: request.body.group, owner: 'alice', body: 'raw' })
    reply.hijack()
    reply.raw.end('raw')
  })
  for (const transaction of ['request', 'statement'] as const) {
    app.post<{ Body: { group: string; bodies: string[]; fail?: boolean } }>(
      `/${transaction}/notes`,
      { config: { keyhole: { transaction } } },
      async (request, reply) => {
        const { group, bodies, fail } = request.body
        for (const body of bodies) {
          await request.db.insert('notes', {
            group_id: group,
            owner: request.requireCapability().subject,
            body,
          })
        }
        if (fail === true) throw new BadRequest()
        return reply.code(201).send({ ok: true })
      },
    )
  }
}

const pool = k.runtimePool(2)
pool.on('error', () => {})
const { app } = await buildApp(
  t,
  { database: { pool, policies, signingKey: k.signingKey }, checks: false },
  routes,
)
const alice = await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] })
const post = (mode: string, bodies: string[], fail = false, group = k.groupA) =>
  app.inject({
    method: 'POST',
    url: `/${mode}/notes`,
    headers: bearer(alice),
    payload: { group, bodies, fail },
  })

t.test("'request': the statements commit together, with the response", async (t) => {
  t.equal((await post('request', ['r1', 'r2'])).statusCode, 201)
  t.same([await count('r1'), await count('r2')], [1, 1])
  t.equal((await post('request', ['r3', 'r4'], true)).statusCode, 400)
  t.same([await count('r3'), await count('r4')], [0, 0], 'a failure rolls both back')
})

t.test('a response that skips onSend (reply.hijack()): its transaction rolls back', async (t) => {
  const response = await app.inject({
    method: 'POST',
    url: '/request/hijacked',
    headers: bearer(alice),
    payload: { group: k.groupA },
  })
  t.equal(response.body, 'raw')
  // onResponse rolled back and released the connection: both of the pool's are free again.
  const clients = await Promise.all([pool.connect(), pool.connect()])
  for (const client of clients) client.release()
  t.equal(await count('raw'), 0, 'nothing of it committed')
})

t.test("'statement': each statement commits alone, when it runs", async (t) => {
  t.equal((await post('statement', ['s1'])).statusCode, 201)
  t.equal(await count('s1'), 1)
  t.equal((await post('statement', ['s2', 's3'], true)).statusCode, 400)
  t.same(
    [await count('s2'), await count('s3')],
    [1, 1],
    'a later failure does not undo what committed: for routes that write at most once',
  )
  const denied = await post('statement', ['elsewhere'], false, k.groupB)
  t.equal(denied.statusCode, 404, 'the guard still decides')
  t.equal(await count('elsewhere'), 0)
})

t.test('any other value is refused when the route is registered', async (t) => {
  await t.rejects(
    buildApp(t, { database: { pool, policies, signingKey: k.signingKey }, checks: false }, (a) => {
      a.get('/typo', { config: { keyhole: { transaction: 'statment' as never } } }, async () => 1)
    }),
    { code: 'KH_INVALID_OPTIONS', message: /keyhole\.transaction on \/typo/ },
  )
})
