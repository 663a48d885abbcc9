/**
 * A connection leaves a request clean or not at all, through the Fastify plugin. The application
 * runs its own SQL under the request's capability with the session factory on the plugin's pool;
 * the `sql` a request sends stands in for an SQL injection into it. With a pool of one connection
 * every request below reuses the connection the previous one left.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createSessionFactory } from '../../src/db/session.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import { bearer, buildApp, mint } from './helpers/app.ts'

const k = await createKeyholeDatabase(t)
const pool = k.runtimePool(1)
pool.on('error', () => {})
const sessions = createSessionFactory({ pool, signingKey: k.signingKey })

interface Raw {
  shape: 'runOne' | 'withCapability'
  statements: string[]
}

function routes(app: FastifyInstance) {
  app.post<{ Body: Raw }>('/raw', async (request) => {
    const { shape, statements } = request.body
    if (shape === 'runOne') await sessions.runOne(request.requireCapability(), statements[0]!)
    else {
      await sessions.withCapability(request.requireCapability(), async (db) => {
        for (const s of statements) await db.query(s)
      })
    }
    return { ran: true }
  })
  for (const transaction of ['request', 'statement'] as const) {
    const config = { keyhole: { transaction } }
    app.post<{ Body: { body: string } }>(
      `/${transaction}/notes`,
      { config },
      async (request, reply) => {
        await request.db.insert('notes', {
          group_id: k.groupB,
          owner: request.requireCapability().subject,
          body: request.body.body,
        })
        return reply.code(201).send({ ok: true })
      },
    )
    app.get(`/${transaction}/notes`, { config }, async (request) => {
      const notes = await request.db.select('notes', {}, { orderBy: [['id', 'asc']] })
      return notes.map((note) => note.body)
    })
  }
}

const { app } = await buildApp(
  t,
  { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
  routes,
)
const mallory = bearer(
  await mint({ sub: 'mallory', permissions: [{ group: k.groupA, role: 'member' }] }),
)
const bob = bearer(await mint({ sub: 'bob', permissions: [{ group: k.groupB, role: 'member' }] }))

const raw = (shape: Raw['shape'], ...statements: string[]) =>
  app.inject({ method: 'POST', url: '/raw', headers: mallory, payload: { shape, statements } })

async function committed(body: string): Promise<boolean> {
  const { rowCount } = await k.db.pool.query('SELECT 1 FROM notes WHERE body = $1', [body])
  return rowCount === 1
}

for (const mode of ['statement', 'request'] as const) {
  t.test(`a BEGIN left open by a request; the next one writes in '${mode}' mode`, async (t) => {
    const left = await raw('runOne', 'BEGIN')
    t.equal(left.statusCode, 500, 'the request that left it open fails')
    t.equal(left.json().code, 'KH_SESSION_DIRTY')
    const body = `bob fastify ${mode}`
    const write = await app.inject({
      method: 'POST',
      url: `/${mode}/notes`,
      headers: bob,
      payload: { body },
    })
    t.equal(write.statusCode, 201)
    t.ok(await committed(body), "bob's write is committed when he is answered")
    t.equal((await raw('runOne', 'ROLLBACK')).statusCode, 200)
    t.ok(await committed(body), "her ROLLBACK cannot discard bob's write")
  })
}

t.test('a transaction reopened inside withCapability is closed by its COMMIT', async (t) => {
  t.equal((await raw('withCapability', 'SELECT 1', 'COMMIT', 'BEGIN')).statusCode, 200)
  const write = await app.inject({
    method: 'POST',
    url: '/statement/notes',
    headers: bob,
    payload: { body: 'bob fastify after withCapability' },
  })
  t.equal(write.statusCode, 201)
  t.ok(await committed('bob fastify after withCapability'))
})

const drops: [Raw['shape'], string[]][] = [
  ['runOne', ['DEALLOCATE keyhole_set_capability']],
  ['runOne', ['DEALLOCATE ALL']],
  ['withCapability', ['DEALLOCATE keyhole_set_capability']],
  ['withCapability', ['SELECT 1', 'COMMIT', 'DISCARD ALL', 'BEGIN']],
]

for (const [shape, statements] of drops) {
  t.test(`${shape}: ${statements.join('; ')} does not break the next request`, async (t) => {
    for (const mode of ['request', 'statement']) {
      const read = await app.inject({ method: 'GET', url: `/${mode}/notes`, headers: bob })
      t.equal(read.statusCode, 200, `before, '${mode}' mode`)
    }
    t.equal((await raw(shape, ...statements)).statusCode, 200)
    for (const mode of ['request', 'statement']) {
      const read = await app.inject({ method: 'GET', url: `/${mode}/notes`, headers: bob })
      t.equal(read.statusCode, 200, `after, '${mode}' mode`)
      t.equal(read.json()[0], 'b')
    }
  })
}
