/**
 * A system context started while keyhole's adapter handles a request is refused
 * (KH_SYSTEM_IN_REQUEST, before any SQL) unless the call says `allowInRequest: true`, on both
 * adapters, on protected and public routes, after the handler's own awaits; the same call outside
 * any request runs.
 */
import Fastify from 'fastify'
import t from 'tap'
import { capabilities as fastifyKeyhole } from '../../plugins/fastify.ts'
import { createKeyhole } from '../../src/db/create-keyhole.ts'
import type { SystemDeclaration } from '../../src/db/system-context.ts'
import { createSystemDatabase, systemPolicies } from '../db/helpers/system-database.ts'
import { bearer, mint, startApp } from './helpers/express-app.ts'
import { baseOptions as fastifyOptions, mint as fastifyMint } from './helpers/app.ts'

const k = await createSystemDatabase(t)
const keyhole = createKeyhole({
  pool: k.runtimePool(),
  policies: systemPolicies,
  signingKey: k.signingKey,
})
const countNotes: SystemDeclaration = {
  reason: 'count notes',
  tables: ['notes'],
  operations: ['read'],
}

/** The handler both adapters run: a system context, allowed or not, after an await of its own. */
async function count(allowInRequest: boolean): Promise<{ notes: number }> {
  await new Promise((resolve) => setImmediate(resolve))
  const notes = await keyhole.runAsSystem(countNotes, (db) => db.select('notes'), {
    allowInRequest,
  })
  return { notes: notes.length }
}

const refused = { statusCode: 500, code: 'KH_SYSTEM_IN_REQUEST' }

t.test('Fastify', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyKeyhole, { ...fastifyOptions, public: ['/public'] })
  app.get('/refused', () => count(false))
  app.get('/allowed', () => count(true))
  app.get('/public', () => count(false))
  await app.ready()
  const headers = bearer(await fastifyMint())
  const answer = async (url: string, h: Record<string, string> = headers) => {
    const response = await app.inject({ method: 'GET', url, headers: h })
    return { status: response.statusCode, body: response.json() }
  }
  t.match(await answer('/refused'), { status: 500, body: refused })
  t.match(await answer('/public', {}), { status: 500, body: refused }, 'a public route too')
  t.same(await answer('/allowed'), { status: 200, body: { notes: 2 } })
})

t.test('Express', async (t) => {
  const { request } = await startApp(t, { public: ['/public'] }, (app) => {
    app.get('/refused', async (_req, res) => void res.json(await count(false)))
    app.get('/allowed', async (_req, res) => void res.json(await count(true)))
    app.get('/public', async (_req, res) => void res.json(await count(false)))
  })
  const headers = bearer(await mint())
  t.match(await request('GET', '/refused', headers), { status: 500, json: refused })
  t.match(await request('GET', '/public'), { status: 500, json: refused }, 'a public route too')
  t.match(await request('GET', '/allowed', headers), { status: 200, json: { notes: 2 } })
})

t.test('outside any request the same call runs', async (t) => {
  t.same(await count(false), { notes: 2 })
})
