/**
 * A Fastify app with keyhole registered (HS256, issuer and audience set), a few routes, the log
 * captured line by line, and tokens minted with jose.
 */
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import { SignJWT, type JWTPayload } from 'jose'
import { capabilities, requireRole, type FastifyKeyholeOptions } from '../../../plugins/fastify.ts'

export const SECRET = 'a-test-secret-of-at-least-32-bytes!!'
export const ISSUER = 'https://auth.test'
export const AUDIENCE = 'keyhole-test'
export const G1 = '00000000-0000-4000-8000-000000000001'
export const G2 = '00000000-0000-4000-8000-000000000002'

export const baseOptions = {
  secret: SECRET,
  algorithms: ['HS256'],
  issuer: ISSUER,
  audience: AUDIENCE,
} satisfies Partial<FastifyKeyholeOptions>

const encode = (text: string) => new TextEncoder().encode(text)

/** A valid token by default (sub alice, no permissions, 5 minutes); `claims` override or add. */
export async function mint(
  claims: JWTPayload & Record<string, unknown> = {},
  options: { secret?: string } = {},
): Promise<string> {
  const signer = new SignJWT({
    sub: 'alice',
    permissions: [],
    iss: ISSUER,
    aud: AUDIENCE,
    ...claims,
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
  if (!('exp' in claims)) signer.setExpirationTime('5m')
  return signer.sign(encode(options.secret ?? SECRET))
}

export interface TestApp {
  readonly app: FastifyInstance
  /** Every log line written so far, parsed. */
  logs(): Record<string, unknown>[]
  /** Every log line written so far, raw. */
  rawLog(): string
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * An app with keyhole and these routes: `GET /me` (the capability), `GET /open` (public by
 * config), `GET /health` (public when the option lists it), `GET /mod` (requireRole moderator),
 * `GET /groups/:groupId/mod` (moderator in that group), then `routes`.
 */
export async function buildApp(
  t: Teardown,
  options: Partial<FastifyKeyholeOptions> = {},
  routes?: (app: FastifyInstance) => void | Promise<void>,
): Promise<TestApp> {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      callback()
    },
  })
  const app = Fastify({ logger: { level: 'debug', stream } })
  t.teardown(() => app.close())
  await app.register(capabilities, { ...baseOptions, ...options } as FastifyKeyholeOptions)
  app.get('/me', async (request) => ({
    subject: request.requireCapability().subject,
    isAdmin: request.requireCapability().isAdmin,
  }))
  app.get('/open', { config: { keyhole: { public: true } } }, async (request) => ({
    capability: request.capability,
  }))
  app.get('/health', async (request) => ({ capability: request.capability }))
  app.get('/mod', { preHandler: requireRole('moderator') }, async () => ({ ok: true }))
  const group = (request: { params: unknown }) => (request.params as { groupId: string }).groupId
  app.get(
    '/groups/:groupId/mod',
    { preHandler: requireRole('moderator', { group }) },
    async () => ({ ok: true }),
  )
  await routes?.(app)
  await app.ready()
  return {
    app,
    logs: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    rawLog: () => lines.join('\n'),
  }
}

/** The `WWW-Authenticate` value for realm "keyhole" (RFC 6750). */
export function challenge(error?: string, description?: string): string {
  return error === undefined
    ? 'Bearer realm="keyhole"'
    : `Bearer realm="keyhole", error="${error}", error_description="${description}"`
}
