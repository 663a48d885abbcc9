/**
 * Types that flow, checked as a user's application is: this file compiles itself through the
 * TypeScript API with `strict`, `exactOptionalPropertyTypes` and `noUncheckedIndexedAccess`, and
 * must produce no diagnostic. The functions below are never called: they are the user code whose
 * types are the contract.
 * - a route's Params/Body/Querystring reach `requireRole`'s group resolver and the handler, with no
 *   cast, in both adapters (a misspelt parameter is an error);
 * - `request.capability` is `Capability | null`; `request.requireCapability()` is the capability
 *   (or a 401), so a protected handler needs no `!`;
 * - every option a user fills from `process.env.X` accepts `string | undefined`.
 * Then, at run time: an `undefined` option is the same as an absent one, and where the option is
 * required the error names it.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import express, { Router, type Express } from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'
import { definePolicies, inGroup, type Capability, type Policies } from '../../src/index.ts'
import type { DatabasePool } from '../../src/http/adapter-options.ts'
import {
  capabilities as expressCapabilities,
  keyholeErrors,
  requireRole as expressRequireRole,
  statementTransactions,
} from '../../plugins/express.ts'
import { client, serve } from '../plugins/helpers/express-app.ts'
import {
  capabilities as fastifyCapabilities,
  requireRole as fastifyRequireRole,
} from '../../plugins/fastify.ts'

declare const pool: DatabasePool
declare const policies: Policies

// ---- Fastify -------------------------------------------------------------------------------

export function fastifyRoutes(app: FastifyInstance): void {
  const requireRole = fastifyRequireRole
  app.get<{ Params: { groupId: string } }>(
    '/groups/:groupId/threads',
    { preHandler: requireRole('member', { group: (request) => request.params.groupId }) },
    async (request) => {
      const groupId: string = request.params.groupId
      const subject: string = request.requireCapability().subject
      return { groupId, subject }
    },
  )
  app.post<{ Params: { groupId: string }; Body: { title: string } }>(
    '/groups/:groupId/threads',
    { preHandler: [requireRole('member', { group: (request) => request.params.groupId })] },
    async (request) => request.body.title,
  )
  app.get<{ Querystring: { group: string } }>(
    '/search',
    { preHandler: requireRole('member', { group: (request) => request.query.group }) },
    async (request) => request.query.group,
  )
  app.route<{ Params: { groupId: string } }>({
    method: 'DELETE',
    url: '/groups/:groupId',
    preHandler: requireRole('admin', { group: (request) => request.params.groupId }),
    handler: async (request) => request.params.groupId,
  })
  // One guard shared by several routes: the route generic given once.
  type GroupRoute = { Params: { groupId: string } }
  const member = requireRole<GroupRoute>('member', { group: (request) => request.params.groupId })
  app.get<GroupRoute>('/groups/:groupId/posts', { preHandler: member }, async () => [])
  app.post<GroupRoute & { Body: { content: string } }>(
    '/groups/:groupId/posts',
    { preHandler: member },
    async (request) => request.body.content,
  )
  app.get('/mods', { preHandler: requireRole('moderator') }, async () => 'ok')
  app.addHook('preHandler', requireRole('member'))

  app.get<{ Params: { groupId: string } }>(
    '/typo/:groupId',
    // @ts-expect-error -- a misspelt parameter is a compile error, not a 400 at run time
    { preHandler: requireRole('member', { group: (request) => request.params.grupId }) },
    async () => 'never',
  )
  app.get('/public', { config: { keyhole: { public: true } } }, async (request) => {
    const capability: Capability | null = request.capability
    // @ts-expect-error -- null on public routes: read it through a null check
    const subject: string = request.capability.subject
    return { capability, subject, anonymous: request.capability === null }
  })
}

export async function fastifyOptionsFromEnv(app: FastifyInstance): Promise<void> {
  await app.register(fastifyCapabilities, {
    secret: process.env.JWT_SECRET,
    publicKey: process.env.JWT_PUBLIC_KEY,
    jwksUrl: process.env.JWKS_URL,
    algorithms: ['HS256'],
    issuer: process.env.JWT_ISSUER,
    audience: process.env.JWT_AUDIENCE,
    typ: process.env.JWT_TYP,
    cookie: process.env.TOKEN_COOKIE,
    realm: process.env.REALM,
    database: { pool, policies, signingKey: process.env.KEYHOLE_SIGNING_KEY },
  })
}

// ---- Express -------------------------------------------------------------------------------

export function expressRoutes(app: Express): void {
  const requireRole = expressRequireRole
  app.get(
    '/groups/:groupId/threads',
    requireRole('member', { group: (req) => req.params.groupId }),
    (req, res) => {
      const groupId: string = req.params.groupId
      const subject: string = req.requireCapability().subject
      res.json({ groupId, subject })
    },
  )
  app.post('/groups/:groupId/notes', requireRole('member'), statementTransactions(), (req, res) => {
    const groupId: string = req.params.groupId
    res.json(groupId)
  })
  app.get('/search', requireRole('member', { group: (req) => req.query.group }), (req, res) => {
    res.json(req.query.group)
  })
  const router = Router()
  // One guard shared by several routes: the parameters given once, checked against each path.
  const member = requireRole<{ groupId: string }>('member', {
    group: (req) => req.params.groupId,
  })
  router.get('/groups/:groupId/posts', member, (req, res) => {
    const groupId: string = req.params.groupId
    res.json(groupId)
  })
  router.post('/groups/:groupId/threads/:threadId', member, (req, res) => {
    const threadId: string = req.params.threadId
    res.json(threadId)
  })
  router.use(requireRole('admin'))
  app.use('/admin', requireRole('admin'), router)

  // @ts-expect-error -- a misspelt parameter is a compile error, not a 400 at run time
  requireRole<{ groupId: string }>('member', { group: (req) => req.params.grupId })
  app.get('/typo/:groupId', requireRole('member'), (req, res) => {
    // @ts-expect-error -- the handler keeps the path's parameters behind requireRole
    res.json(req.params.grupId)
  })
  app.get('/public', (req, res) => {
    const capability: Capability | null = req.capability
    // @ts-expect-error -- null on public routes: read it through a null check
    const subject: string = req.capability.subject
    res.json({ capability, subject })
  })
}

export function expressOptionsFromEnv(): void {
  expressCapabilities({
    secret: process.env.JWT_SECRET,
    publicKey: process.env.JWT_PUBLIC_KEY,
    jwksUrl: process.env.JWKS_URL,
    algorithms: ['HS256'],
    issuer: process.env.JWT_ISSUER,
    audience: process.env.JWT_AUDIENCE,
    typ: process.env.JWT_TYP,
    cookie: process.env.TOKEN_COOKIE,
    realm: process.env.REALM,
    database: { pool, policies, signingKey: process.env.KEYHOLE_SIGNING_KEY },
  })
}

// ---- The check -----------------------------------------------------------------------------

const self = fileURLToPath(import.meta.url)

t.test('compiles under strict and exactOptionalPropertyTypes, as a user compiles it', async (t) => {
  const program = ts.createProgram([self], {
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    noUnusedLocals: true,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts'],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    verbatimModuleSyntax: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
  })
  const diagnostics = ts.getPreEmitDiagnostics(program, program.getSourceFile(self))
  const text = diagnostics.map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
    const at = diagnostic.file?.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
    return at === undefined ? message : `line ${at.line + 1}: ${message}`
  })
  t.same(text, [], 'no diagnostic')
})

// ---- At run time: undefined is absent ------------------------------------------------------

const fakePool = { query: async () => ({ rows: [] }), connect: async () => ({}) } as never
const basePolicies = definePolicies({ notes: { read: inGroup('group_id', 'member') } })
const base = {
  secret: 'a-secret-of-at-least-thirty-two-bytes!!',
  algorithms: ['HS256'] as const,
  issuer: 'https://auth.example',
  audience: 'forum',
  typ: 'JWT',
  cookie: 'token',
  realm: 'forum',
  clockTolerance: 5,
  maxTokenAge: 3600,
  public: ['/health'],
  logDenials: true,
  checks: false,
  database: {
    pool: fakePool,
    policies: basePolicies,
    signingKey: 'k'.repeat(43),
    mode: 'rls' as const,
    prepared: true,
  },
}

/** 'ok', or the code and message `capabilities()` refuses the options with. */
async function outcome(options: object): Promise<string> {
  try {
    const keyhole = expressCapabilities(options as Parameters<typeof expressCapabilities>[0])
    await keyhole.close()
    return 'ok'
  } catch (error) {
    const { code, message } = error as { code: string; message: string }
    return `${code}: ${message}`
  }
}

const without = <T extends object>(object: T, key: string): T =>
  Object.fromEntries(Object.entries(object).filter(([k]) => k !== key)) as T

t.test('an option given as undefined behaves exactly as an absent one', async (t) => {
  t.equal(await outcome(base), 'ok', 'the base options are valid')
  const keys = [
    ...['secret', 'publicKey', 'jwksUrl', 'issuer', 'audience', 'typ', 'cookie', 'realm'],
    ...['clockTolerance', 'maxTokenAge', 'public', 'logDenials', 'checks', 'monitor'],
  ]
  for (const key of keys) {
    t.equal(await outcome({ ...base, [key]: undefined }), await outcome(without(base, key)), key)
  }
  for (const key of ['signingKey', 'mode', 'prepared']) {
    t.equal(
      await outcome({ ...base, database: { ...base.database, [key]: undefined } }),
      await outcome({ ...base, database: without(base.database, key) }),
      `database.${key}`,
    )
  }
})

t.test('a required option given as undefined is refused, naming it', async (t) => {
  t.equal(
    await outcome({ ...base, secret: undefined }),
    'KH_INVALID_OPTIONS: secret, publicKey, jwksUrl, getKey, discovery: exactly one key source is required (got none)',
  )
  t.equal(
    await outcome({ ...base, database: { ...base.database, signingKey: undefined } }),
    "KH_INVALID_OPTIONS: Invalid option database.signingKey: required when database.mode is 'rls'",
  )
  const fastify = Fastify()
  t.teardown(() => fastify.close())
  await t.rejects(
    async () => {
      await fastify.register(fastifyCapabilities, { ...base, secret: undefined })
    },
    { code: 'KH_INVALID_OPTIONS', message: /exactly one key source is required \(got none\)/ },
    'the plugin the same',
  )
})

t.test('requireCapability() is the capability, or 401 where there is none', async (t) => {
  const token = await new SignJWT({ sub: 'alice', permissions: [] })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(base.issuer)
    .setAudience(base.audience)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(base.secret))
  const options = { ...without(without(base, 'database'), 'checks'), typ: undefined }
  const headers = { authorization: `Bearer ${token}` }
  const expected = { code: 'KH_TOKEN_MISSING', challenge: 'Bearer realm="forum"' }

  const fastify = Fastify()
  t.teardown(() => fastify.close())
  await fastify.register(fastifyCapabilities, { ...options, public: ['/open'] })
  for (const path of ['/open', '/closed']) {
    fastify.get(path, async (request) => ({ subject: request.requireCapability().subject }))
  }
  const closed = await fastify.inject({ url: '/closed', headers })
  t.same(closed.json(), { subject: 'alice' }, 'fastify: the capability')
  const open = await fastify.inject({ url: '/open', headers })
  t.equal(open.statusCode, 401, 'fastify: 401 on a public route')
  t.same({ code: open.json().code, challenge: open.headers['www-authenticate'] }, expected)

  const keyhole = expressCapabilities({ ...options, public: ['/open'] })
  t.teardown(() => keyhole.close())
  const app = express()
  app.use(keyhole)
  for (const path of ['/open', '/closed']) {
    app.get(path, (req, res) => void res.json({ subject: req.requireCapability().subject }))
  }
  app.use(keyholeErrors())
  const request = client((await serve(t, app)).base)
  t.same((await request('GET', '/closed', headers)).json, { subject: 'alice' }, 'express too')
  const answer = await request('GET', '/open', headers)
  t.equal(answer.status, 401, 'express: 401 on a public route')
  t.same({ code: answer.json.code, challenge: answer.headers.get('www-authenticate') }, expected)
})
