/**
 * What the plugin protects: every route, in sibling and child plugins, the automatic HEAD routes
 * and the 404 handler; public routes by option or route config (CORS preflights:
 * fastify-preflight.test.ts). And what it logs: every 401/403 once, at info, never the token.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { requireRole } from '../../plugins/fastify.ts'
import { bearer, buildApp, mint } from './helpers/app.ts'

async function routes(app: FastifyInstance) {
  app.get('/health', async () => 'up')
  app.get('/healthz', async () => 'up')
  app.get('/docs', async () => 'docs')
  app.get('/docs/json', async () => 'json')
  app.get('/docs/static/*', async () => 'static')
  app.get('/posts/:id', async () => 'post')
  app.get('/open', { config: { keyhole: { public: true } } }, async () => 'open')
  app.get('/private', async (request) => request.requireCapability().subject)
  app.options('/private', async (_request, reply) => reply.code(204).send())
  await app.register(
    async (child) => {
      child.get('/inside', async () => 'inside')
      await child.register(async (grandchild) => {
        grandchild.get('/deeper', async () => 'deeper')
      })
    },
    { prefix: '/child' },
  )
}

const options = { public: ['/health', '/docs/*', '/posts/:id'] }

t.test('public routes answer without a token; nothing else does', async (t) => {
  const { app } = await buildApp(t, options, routes)
  const token = await mint()
  const cases: [string, string, boolean][] = [
    ['GET', '/health', true],
    ['GET', '/health?x=1', true],
    ['HEAD', '/health', true],
    ['GET', '/docs', true],
    ['GET', '/docs/json', true],
    ['GET', '/docs/static/a/b.css', true],
    ['GET', '/posts/42', true],
    ['GET', '/open', true],
    ['GET', '/healthz', false],
    ['GET', '/private', false],
    ['HEAD', '/private', false],
    ['GET', '/child/inside', false],
    ['GET', '/child/deeper', false],
    ['GET', '/health/../private', false],
    ['GET', '/docs/../private', false],
  ]
  for (const [method, url, open] of cases) {
    const anonymous = await app.inject({ method: method as 'GET', url })
    if (open) t.not(anonymous.statusCode, 401, `${method} ${url} is public`)
    else {
      t.equal(anonymous.statusCode, 401, `${method} ${url} needs a token`)
      if (method !== 'HEAD') t.equal(anonymous.json().code, 'KH_TOKEN_MISSING')
    }
  }
  const child = await app.inject({ method: 'GET', url: '/child/deeper', headers: bearer(token) })
  t.equal(child.statusCode, 200)
  t.equal(child.body, 'deeper')
})

t.test(
  'a public route ignores any token: no capability, not even a bad token refused',
  async (t) => {
    const { app } = await buildApp(t, options, async (app) => {
      await routes(app)
      app.get('/who', { config: { keyhole: { public: true } } }, async (request) => ({
        capability: request.capability,
      }))
    })
    const response = await app.inject({ method: 'GET', url: '/who', headers: bearer('garbage') })
    t.equal(response.statusCode, 200)
    t.same(response.json(), { capability: null })
  },
)

t.test('unknown routes answer 401 without a token and 404 with one', async (t) => {
  // keyhole's onRequest hook runs for the 404 handler too: an anonymous caller cannot probe which
  // routes exist. Public entries match registered routes only, so an unknown path below a public
  // subtree needs a token as well.
  const { app } = await buildApp(t, options, routes)
  const token = await mint()
  const anonymous = await app.inject({ method: 'GET', url: '/no/such/route' })
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.json().code, 'KH_TOKEN_MISSING')
  const known = await app.inject({ method: 'GET', url: '/no/such/route', headers: bearer(token) })
  t.equal(known.statusCode, 404)
  const docs = await app.inject({ method: 'GET', url: '/docs/nothing-here' })
  t.equal(docs.statusCode, 401, 'the subtree covers registered routes only')
})

t.test(
  '401 and 403 are logged once at info with code, route, subject and the reason; never the token',
  async (t) => {
    const { app, logText, logLines } = await buildApp(t, options, async (app) => {
      await routes(app)
      app.get('/mods', { preHandler: requireRole('moderator') }, async () => 'ok')
    })
    const member = await mint({ sub: 'alice' })
    const expired = await mint({ sub: 'bob' }, { exp: -120 })
    await app.inject({ method: 'GET', url: '/private', headers: bearer(expired) })
    await app.inject({ method: 'GET', url: '/mods', headers: bearer(member) })
    await app.inject({
      method: 'GET',
      url: '/private',
      headers: { authorization: `Basic ${member}` },
    })
    const denials = logLines()
      .filter((line) => line.keyhole !== undefined)
      .map((line) => ({ level: line.level, ...(line.keyhole as object) }))
    t.same(denials, [
      {
        level: 30,
        code: 'KH_TOKEN_EXPIRED',
        route: '/private',
        subject: null,
        reason: 'exp: in the past',
      },
      { level: 30, code: 'KH_FORBIDDEN', route: '/mods', subject: 'alice' },
      { level: 30, code: 'KH_TOKEN_MISSING', route: '/private', subject: null },
    ])
    for (const token of [member, expired]) {
      t.notMatch(logText(), token)
      for (const part of token.split('.')) t.notMatch(logText(), part)
    }
  },
)

t.test('logDenials: false logs no denial', async (t) => {
  const { app, logLines } = await buildApp(t, { logDenials: false }, routes)
  await app.inject({ method: 'GET', url: '/private' })
  t.same(
    logLines().filter((line) => line.keyhole !== undefined),
    [],
  )
})
