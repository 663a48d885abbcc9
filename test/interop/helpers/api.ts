/**
 * The API a provider's tokens are for, built with each adapter: keyhole without a database (the
 * interop suite is about tokens), three routes, and one way to call them whichever the adapter.
 *
 * Routes: `GET /me` (the capability: subject, scopes, the groups it moderates), `GET /threads`
 * (scope forum:read), `POST /threads` (scope forum:write and the moderator role).
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import Fastify from 'fastify'
import * as forExpress from '../../../plugins/express.ts'
import * as forFastify from '../../../plugins/fastify.ts'
import type { Capability } from '../../../src/capability/capability.ts'
import type { KeyholeOptions } from '../../../src/options.ts'

export const adapters = ['fastify', 'express'] as const
export type Adapter = (typeof adapters)[number]

export interface Answer {
  readonly status: number
  readonly challenge: string | undefined
  readonly body: Record<string, unknown>
}

/** Calls the API with `token` as the bearer token. */
export type Call = (method: 'GET' | 'POST', path: string, token?: string) => Promise<Answer>

interface Teardown {
  teardown(fn: () => unknown): void
}

const me = (capability: Capability) => ({
  subject: capability.subject,
  scopes: capability.scopes,
  moderatorOf: capability.groups('moderator'),
})

const bearer = (token: string | undefined): Record<string, string> =>
  token === undefined ? {} : { authorization: `Bearer ${token}` }

async function fastifyApi(t: Teardown, options: KeyholeOptions): Promise<Call> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(forFastify.capabilities, { ...options, logDenials: false })
  app.get('/me', async (request) => me(request.requireCapability()))
  app.get('/threads', { preHandler: forFastify.requireScope('forum:read') }, async () => ({
    threads: [],
  }))
  app.post(
    '/threads',
    { preHandler: [forFastify.requireScope('forum:write'), forFastify.requireRole('moderator')] },
    async (_request, reply) => reply.code(201).send({ created: true }),
  )
  await app.ready()
  return async (method, path, token) => {
    const response = await app.inject({ method, url: path, headers: bearer(token) })
    const challenge = response.headers['www-authenticate']
    return {
      status: response.statusCode,
      challenge: typeof challenge === 'string' ? challenge : undefined,
      body: response.json(),
    }
  }
}

async function expressApi(t: Teardown, options: KeyholeOptions): Promise<Call> {
  const keyhole = forExpress.capabilities({
    ...options,
    logDenials: false,
    logger: { fatal() {}, error() {}, warn() {}, info() {}, debug() {} },
  })
  const app = express()
  app.use(keyhole)
  app.get('/me', (req, res) => void res.json(me(req.requireCapability())))
  app.get('/threads', forExpress.requireScope('forum:read'), (_req, res) => {
    res.json({ threads: [] })
  })
  app.post(
    '/threads',
    forExpress.requireScope('forum:write'),
    forExpress.requireRole('moderator'),
    (_req, res) => void res.status(201).json({ created: true }),
  )
  app.use(forExpress.keyholeErrors())
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    server.close()
    await keyhole.close()
  })
  await keyhole.ready({ server })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return async (method, path, token) => {
    const response = await fetch(`${base}${path}`, { method, headers: bearer(token) })
    return {
      status: response.status,
      challenge: response.headers.get('www-authenticate') ?? undefined,
      body: (await response.json()) as Record<string, unknown>,
    }
  }
}

/** The API on `adapter` with these token options; closed at teardown. */
export function startApi(t: Teardown, adapter: Adapter, options: KeyholeOptions): Promise<Call> {
  return adapter === 'fastify' ? fastifyApi(t, options) : expressApi(t, options)
}
