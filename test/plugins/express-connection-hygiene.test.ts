/**
 * A connection leaves a request clean or not at all, through the Express middleware. The
 * application runs its own SQL under the request's capability with the session factory on the
 * middleware's pool; the `sql` a request sends stands in for an SQL injection into it. With a pool
 * of one connection every request below reuses the connection the previous one left.
 */
import t from 'tap'
import type { Express, Request, Response } from 'express'
import { statementTransactions } from '../../plugins/express.ts'
import { createSessionFactory } from '../../src/db/session.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import { bearer, mint, startApp } from './helpers/express-app.ts'

const k = await createKeyholeDatabase(t)
const pool = k.runtimePool(1)
pool.on('error', () => {})
const sessions = createSessionFactory({ pool, signingKey: k.signingKey })

interface Raw {
  shape: 'runOne' | 'withCapability'
  statements: string[]
}

function routes(app: Express) {
  app.post('/raw', async (req, res) => {
    const { shape, statements } = req.body as Raw
    if (shape === 'runOne') await sessions.runOne(req.requireCapability(), statements[0]!)
    else {
      await sessions.withCapability(req.requireCapability(), async (db) => {
        for (const s of statements) await db.query(s)
      })
    }
    res.json({ ran: true })
  })
  const write = async (req: Request, res: Response) => {
    const { body } = req.body as { body: string }
    await req.db.insert('notes', {
      group_id: k.groupB,
      owner: req.requireCapability().subject,
      body,
    })
    res.status(201).json({ ok: true })
  }
  const read = async (req: Request, res: Response) => {
    const notes = await req.db.select('notes', {}, { orderBy: [['id', 'asc']] })
    res.json(notes.map((note) => note.body))
  }
  app.post('/request/notes', write)
  app.get('/request/notes', read)
  app.post('/statement/notes', statementTransactions(), write)
  app.get('/statement/notes', statementTransactions(), read)
}

const { request } = await startApp(
  t,
  { database: { pool, policies: notesPolicies, signingKey: k.signingKey }, checks: false },
  routes,
)
const mallory = bearer(
  await mint({ sub: 'mallory', permissions: [{ group: k.groupA, role: 'member' }] }),
)
const bob = bearer(await mint({ sub: 'bob', permissions: [{ group: k.groupB, role: 'member' }] }))

const raw = (shape: Raw['shape'], ...statements: string[]) =>
  request('POST', '/raw', mallory, { shape, statements })

async function committed(body: string): Promise<boolean> {
  const { rowCount } = await k.db.pool.query('SELECT 1 FROM notes WHERE body = $1', [body])
  return rowCount === 1
}

for (const mode of ['statement', 'request'] as const) {
  t.test(`a BEGIN left open by a request; the next one writes in '${mode}' mode`, async (t) => {
    const left = await raw('runOne', 'BEGIN')
    t.equal(left.status, 500, 'the request that left it open fails')
    t.equal(left.json.code, 'KH_SESSION_DIRTY')
    const body = `bob express ${mode}`
    t.equal((await request('POST', `/${mode}/notes`, bob, { body })).status, 201)
    t.ok(await committed(body), "bob's write is committed when he is answered")
    t.equal((await raw('runOne', 'ROLLBACK')).status, 200)
    t.ok(await committed(body), "her ROLLBACK cannot discard bob's write")
  })
}

t.test('a transaction reopened inside withCapability is closed by its COMMIT', async (t) => {
  t.equal((await raw('withCapability', 'SELECT 1', 'COMMIT', 'BEGIN')).status, 200)
  const body = 'bob express after withCapability'
  t.equal((await request('POST', '/statement/notes', bob, { body })).status, 201)
  t.ok(await committed(body))
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
      t.equal((await request('GET', `/${mode}/notes`, bob)).status, 200, `before, '${mode}' mode`)
    }
    t.equal((await raw(shape, ...statements)).status, 200)
    for (const mode of ['request', 'statement']) {
      const read = await request('GET', `/${mode}/notes`, bob)
      t.equal(read.status, 200, `after, '${mode}' mode`)
      t.equal(read.json?.[0], 'b')
    }
  })
}
