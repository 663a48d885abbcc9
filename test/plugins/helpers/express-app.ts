/**
 * An Express 5 app with keyhole in front of a few routes, served on 127.0.0.1 and driven over real
 * HTTP with `fetch`; tokens minted with jose as an authentication service would sign them; the
 * logger keeps every line in memory so a test can assert what reached it. Loads nothing of
 * Fastify.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type Express } from 'express'
import { SignJWT, type JWTPayload } from 'jose'
import {
  capabilities,
  keyholeErrors,
  type ExpressKeyholeOptions,
  type KeyholeLogger,
  type KeyholeMiddleware,
} from '../../../plugins/express.ts'

export const secret = 'an-express-test-secret-of-at-least-32-bytes'
export const issuer = 'https://auth.express.test'
export const audience = 'keyhole-express-test'
export const groupA = randomUUID()
export const groupB = randomUUID()

/** The token options every test starts from. */
export const baseOptions = {
  secret,
  algorithms: ['HS256'],
  issuer,
  audience,
} satisfies Partial<ExpressKeyholeOptions>

/** Signs `claims` (default: subject `alice`, member of group A, an hour) with HS256. */
export async function mint(claims: JWTPayload = {}, key = secret): Promise<string> {
  return new SignJWT({ sub: 'alice', permissions: [{ group: groupA, role: 'member' }], ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(key))
}

/** `Authorization: Bearer <token>`. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

export interface LogLine {
  readonly level: string
  readonly details: Record<string, unknown>
  readonly message: string
}

/** A pino-shaped logger that keeps every line. */
export function memoryLogger(): KeyholeLogger & { readonly lines: LogLine[] } {
  const lines: LogLine[] = []
  const at = (level: string) => (details: object, message: string) => {
    lines.push({ level, details: details as Record<string, unknown>, message })
  }
  return {
    lines,
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
  }
}

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The body parsed as JSON (undefined when it is not JSON). */
  readonly json: any
}

/** Requests against one server. */
export type Client = (
  method: string,
  path: string,
  headers?: Record<string, string>,
  body?: unknown,
) => Promise<Answer>

interface Teardown {
  teardown(fn: () => unknown): void
}

/** Serves `app` on 127.0.0.1 (closed at teardown, keep-alive connections too). */
export async function serve(t: Teardown, app: Express): Promise<{ server: Server; base: string }> {
  const server = createServer(app)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    if (server.listening) {
      server.close()
      await once(server, 'close')
    }
  })
  const { port } = server.address() as AddressInfo
  return { server, base: `http://127.0.0.1:${port}` }
}

/** A client for `base`: JSON bodies, answers read in full. */
export function client(base: string): Client {
  return async (method, path, headers = {}, body) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, headers: response.headers, text, json }
  }
}

export interface TestApp {
  readonly app: Express
  readonly keyhole: KeyholeMiddleware
  readonly server: Server
  readonly logger: ReturnType<typeof memoryLogger>
  readonly request: Client
}

/**
 * keyhole (`options` over {@link baseOptions}, the memory logger), `express.json()`, then
 * `routes`, then `keyholeErrors()`; `ready()` unless told not to; served on 127.0.0.1. Everything
 * is closed at teardown.
 */
export async function startApp(
  t: Teardown,
  options: Partial<ExpressKeyholeOptions> = {},
  routes: (app: Express, keyhole: KeyholeMiddleware) => void = () => {},
  { ready = true }: { ready?: boolean } = {},
): Promise<TestApp> {
  const logger = memoryLogger()
  const keyhole = capabilities({ ...baseOptions, logger, ...options } as ExpressKeyholeOptions)
  t.teardown(() => keyhole.close())
  const app = express()
  app.use(keyhole, express.json())
  routes(app, keyhole)
  app.use(keyholeErrors())
  const { server, base } = await serve(t, app)
  if (ready) await keyhole.ready({ server })
  return { app, keyhole, server, logger, request: client(base) }
}
