/**
 * A Fastify app with keyhole registered, for the plugin tests: an HS256 secret, an issuer and an
 * audience, a token minter (jose's `SignJWT`, as an authentication service would sign), and a log
 * stream captured line by line so a test can assert what reached the log.
 */
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import { SignJWT, type JWTPayload } from 'jose'
import { capabilities, type FastifyKeyholeOptions } from '../../../plugins/fastify.ts'

export const secret = 'a-test-secret-of-at-least-32-bytes-0123456789'
export const issuer = 'https://auth.test'
export const audience = 'keyhole-test'

/** The token options every test starts from. */
export const baseOptions = {
  secret,
  algorithms: ['HS256'],
  issuer,
  audience,
} satisfies Partial<FastifyKeyholeOptions>

export const groupA = randomUUID()
export const groupB = randomUUID()

export interface MintOptions {
  readonly key?: string
  readonly iss?: string
  readonly aud?: string
  /** Seconds from now; negative for an expired token; `null` for no `exp`. */
  readonly exp?: number | null
  readonly header?: Record<string, unknown>
}

/** Signs `claims` (default: subject `alice`, member of group A) with HS256. */
export async function mint(claims: JWTPayload = {}, options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT({
    sub: 'alice',
    permissions: [{ group: groupA, role: 'member' }],
    ...claims,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...options.header })
    .setIssuer(options.iss ?? issuer)
    .setAudience(options.aud ?? audience)
    .setIssuedAt(now)
  if (options.exp !== null) jwt.setExpirationTime(now + (options.exp ?? 3600))
  return jwt.sign(new TextEncoder().encode(options.key ?? secret))
}

/** A token for a holder of `role` in `group`. */
export function tokenFor(sub: string, permissions: { group: string; role: string }[]) {
  return mint({ sub, permissions })
}

export interface TestApp {
  readonly app: FastifyInstance
  /** Every log line written so far, as text. */
  readonly logText: () => string
  /** Every log line written so far, parsed. */
  readonly logLines: () => Record<string, unknown>[]
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * Builds an app with keyhole (`options` over {@link baseOptions}), then `routes`, then `ready()`.
 * Closed at teardown.
 */
export async function buildApp(
  t: Teardown,
  options: Partial<FastifyKeyholeOptions> = {},
  routes: (app: FastifyInstance) => void | Promise<void> = () => {},
): Promise<TestApp> {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    },
  })
  const app = Fastify({ logger: { level: 'debug', stream } })
  t.teardown(() => app.close())
  await app.register(capabilities, { ...baseOptions, ...options } as FastifyKeyholeOptions)
  await routes(app)
  await app.ready()
  return {
    app,
    logText: () => lines.join('\n'),
    logLines: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  }
}

/** `Authorization: Bearer <token>`. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
