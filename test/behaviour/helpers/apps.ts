/**
 * The same small app built with each adapter, for the behaviour table: keyhole in 'rls' mode on
 * the notes database (test/db/helpers/keyhole.ts), start-up checks on, served on 127.0.0.1 and
 * driven over real HTTP, so both answer through the same wire.
 *
 * Routes: `GET /health` (public), `GET /me`, `GET /mod` (moderator anywhere),
 * `GET /groups/:groupId/mod` (moderator there), `GET /scoped` (scope notes:write),
 * `GET /groups/:groupId/scoped-mod` (scope notes:write and moderator there), `GET /notes`, `POST /notes` `{ id?, group, body }`,
 * `PATCH /notes/:id` `{ body }`, `DELETE /notes/:id`.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import Fastify, { type FastifyRequest } from 'fastify'
import * as forExpress from '../../../plugins/express.ts'
import * as forFastify from '../../../plugins/fastify.ts'
import type { Capability } from '../../../src/capability/capability.ts'
import type { PolicyHandle } from '../../../src/sql/policies.ts'
import type { KeyholeDatabase } from '../../db/helpers/keyhole.ts'
import { notesPolicies } from '../../db/helpers/keyhole.ts'

export const SECRET = 'a-behaviour-secret-of-at-least-32-bytes'
export const ISSUER = 'https://auth.behaviour.test'
export const AUDIENCE = 'keyhole-behaviour'

export const adapters = ['fastify', 'express'] as const
export type Adapter = (typeof adapters)[number]

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

export interface RunningApp {
  request(
    method: string,
    path: string,
    headers?: Record<string, string>,
    body?: unknown,
  ): Promise<Answer>
  close(): Promise<void>
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/** What each route does, the same on both adapters (and in worker.test.ts, without HTTP). */
export const handlers = {
  me: (capability: Capability) => ({ subject: capability.subject, isAdmin: capability.isAdmin }),
  notes: async (db: PolicyHandle) =>
    (await db.select('notes', {}, { orderBy: [['id', 'asc']] })).map((note) => note.body),
  // A client may send the note's id: keyhole refuses the key whatever its value (no oracle).
  create: (
    db: PolicyHandle,
    capability: Capability,
    body: { id?: unknown; group?: unknown; body?: unknown },
  ) =>
    db.insert('notes', {
      ...(body.id === undefined ? {} : { id: body.id }),
      group_id: body.group,
      owner: capability.subject,
      body: body.body,
    } as never),
  rename: async (db: PolicyHandle, id: string, body: { body?: unknown }) =>
    (await db.update('notes', { id: Number(id) }, { body: body.body } as never)).rows[0],
  remove: (db: PolicyHandle, id: string) =>
    db.delete('notes', { id: Number(id) }, { returning: [] }),
}

function options(k: KeyholeDatabase) {
  return {
    secret: SECRET,
    algorithms: ['HS256' as const],
    issuer: ISSUER,
    audience: AUDIENCE,
    public: ['/health'],
    logDenials: false,
    database: { pool: k.runtimePool(2), policies: notesPolicies, signingKey: k.signingKey },
    checks: { migrationRole: k.migrator.name },
    monitor: false as const,
  }
}

function client(base: string): RunningApp['request'] {
  return async (method, path, headers = {}, body) => {
    const sent = { ...headers }
    if (body !== undefined) sent['content-type'] = 'application/json'
    const response = await fetch(`${base}${path}`, {
      method,
      headers: sent,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: response.status, headers: response.headers, text: await response.text() }
  }
}

async function fastifyApp(k: KeyholeDatabase): Promise<RunningApp> {
  const app = Fastify()
  // An empty body sent as JSON is no body, as express.json() has it (Fastify's parser says 400).
  const json = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    (request, body: string, done) =>
      body === '' ? done(null, undefined) : json(request, body, done),
  )
  await app.register(forFastify.capabilities, options(k))
  const group = (request: FastifyRequest) => (request.params as { groupId: string }).groupId
  type Id = { Params: { id: string } }
  type Body = { Body: { id?: unknown; group?: unknown; body?: unknown } }
  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/me', async (request) => handlers.me(request.requireCapability()))
  app.get('/mod', { preHandler: forFastify.requireRole('moderator') }, async () => ({ ok: true }))
  app.get(
    '/groups/:groupId/mod',
    { preHandler: forFastify.requireRole('moderator', { group }) },
    async () => ({ ok: true }),
  )
  app.get('/scoped', { preHandler: forFastify.requireScope('notes:write') }, async () => ({
    ok: true,
  }))
  app.get(
    '/groups/:groupId/scoped-mod',
    {
      preHandler: [
        forFastify.requireScope('notes:write'),
        forFastify.requireRole('moderator', { group }),
      ],
    },
    async () => ({ ok: true }),
  )
  app.get('/notes', async (request) => handlers.notes(request.db))
  app.post<Body>('/notes', async (request, reply) =>
    reply
      .code(201)
      .send(await handlers.create(request.db, request.requireCapability(), request.body)),
  )
  app.patch<Id & Body>('/notes/:id', async (request) =>
    handlers.rename(request.db, request.params.id, request.body),
  )
  app.delete<Id>('/notes/:id', async (request, reply) => {
    await handlers.remove(request.db, request.params.id)
    return reply.code(204).send()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { request: client(`http://127.0.0.1:${port}`), close: () => app.close() }
}

async function expressApp(k: KeyholeDatabase): Promise<RunningApp> {
  const keyhole = forExpress.capabilities(options(k))
  const app = express()
  app.use(keyhole, express.json())
  app.get('/health', (_req, res) => void res.json({ status: 'ok' }))
  app.get('/me', (req, res) => void res.json(handlers.me(req.requireCapability())))
  app.get('/mod', forExpress.requireRole('moderator'), (_req, res) => void res.json({ ok: true }))
  app.get(
    '/groups/:groupId/mod',
    forExpress.requireRole('moderator', { group: (req) => req.params.groupId }),
    (_req, res) => void res.json({ ok: true }),
  )
  app.get(
    '/scoped',
    forExpress.requireScope('notes:write'),
    (_req, res) => void res.json({ ok: true }),
  )
  app.get(
    '/groups/:groupId/scoped-mod',
    forExpress.requireScope('notes:write'),
    forExpress.requireRole('moderator', { group: (req) => req.params.groupId }),
    (_req, res) => void res.json({ ok: true }),
  )
  app.get('/notes', async (req, res) => void res.json(await handlers.notes(req.db)))
  app.post('/notes', async (req, res) => {
    res.status(201).json(await handlers.create(req.db, req.requireCapability(), req.body ?? {}))
  })
  app.patch('/notes/:id', async (req, res) => {
    res.json(await handlers.rename(req.db, String(req.params.id), req.body ?? {}))
  })
  app.delete('/notes/:id', async (req, res) => {
    await handlers.remove(req.db, String(req.params.id))
    res.status(204).end()
  })
  app.use(forExpress.keyholeErrors())
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  await keyhole.ready({ server })
  const { port } = server.address() as AddressInfo
  return {
    request: client(`http://127.0.0.1:${port}`),
    async close() {
      server.close()
      await keyhole.close()
    },
  }
}

/** The app of `adapter`, closed at teardown. */
export async function startApp(t: Teardown, adapter: Adapter, k: KeyholeDatabase) {
  const app = adapter === 'fastify' ? await fastifyApp(k) : await expressApp(k)
  t.teardown(() => app.close())
  return app
}
