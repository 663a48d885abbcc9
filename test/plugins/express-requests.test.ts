/**
 * The middleware on requests, what is Express's own (the shared behaviour table in test/behaviour
 * holds every status row for both adapters): one request per status as a smoke test, requireRole's
 * lazy role check and its missing middleware, `keyholeErrors()` handing every other error on, and
 * what reaches the logger (CORS preflights: express-preflight.test.ts).
 */
import t from 'tap'
import express, { type ErrorRequestHandler } from 'express'
import { keyholeErrors, requireRole } from '../../plugins/express.ts'
import { Forbidden, NotFound, ServiceUnavailable } from '../../src/errors.ts'
import {
  bearer,
  client,
  groupA,
  groupB,
  mint,
  serve,
  startApp,
  type TestApp,
} from './helpers/express-app.ts'

const challenge = 'Bearer realm="keyhole"'
const mod = await mint({ sub: 'mo', permissions: [{ group: groupA, role: 'moderator' }] })
const alice = await mint()

/** The routes of most tests: /me, /mod, /groups/:groupId/mod, /typo (unknown role), /boom. */
function routes(app: TestApp['app']) {
  app.get('/me', (req, res) => void res.json({ subject: req.requireCapability().subject }))
  app.get('/mod', requireRole('moderator'), (_req, res) => void res.json({ ok: true }))
  app.get(
    '/groups/:groupId/mod',
    requireRole('moderator', { group: (req) => req.params.groupId }),
    (_req, res) => void res.json({ ok: true }),
  )
  app.get(
    '/nogroup/mod',
    requireRole('moderator', { group: (req) => req.query.group }),
    (_req, res) => void res.json({ ok: true }),
  )
  app.get('/typo', requireRole('moderater'), (_req, res) => void res.json({ ok: true }))
  app.get('/unavailable', () => {
    throw new ServiceUnavailable({ message: 'the queue at db-7.internal is full' })
  })
  app.get('/boom', () => {
    throw new Error('not keyhole')
  })
}

t.test('one request per status', async (t) => {
  const { request } = await startApp(t, {}, routes)
  const cases: [string, Record<string, string>, number, string | undefined][] = [
    ['/me', bearer(alice), 200, undefined],
    ['/me', {}, 401, 'KH_TOKEN_MISSING'],
    ['/me', bearer('a.b.c'), 401, 'KH_TOKEN_MALFORMED'],
    ['/mod', bearer(alice), 403, 'KH_FORBIDDEN'],
    ['/mod', bearer(mod), 200, undefined],
    [`/groups/${groupA}/mod`, bearer(mod), 200, undefined],
    [`/groups/${groupB}/mod`, bearer(mod), 403, 'KH_FORBIDDEN'],
    ['/groups/not-a-uuid/mod', bearer(mod), 400, 'KH_BAD_REQUEST'],
    ['/nogroup/mod', bearer(mod), 400, 'KH_BAD_REQUEST'],
    ['/unavailable', bearer(alice), 503, 'KH_UNAVAILABLE'],
  ]
  for (const [path, headers, status, code] of cases) {
    const response = await request('GET', path, headers)
    t.equal(response.status, status, `${path} ${status}`)
    t.equal(response.json?.code, code, `${path} ${code}`)
  }
  const missing = await request('GET', '/me')
  t.equal(missing.headers.get('www-authenticate'), challenge)
  t.same(missing.json, {
    statusCode: 401,
    error: 'Unauthorized',
    message: 'Authorization required',
    code: 'KH_TOKEN_MISSING',
  })
  const forbidden = await request('GET', '/mod', bearer(alice))
  t.match(forbidden.headers.get('www-authenticate'), /error="insufficient_scope"/)
  const missingGroup = await request('GET', '/nogroup/mod', bearer(mod))
  t.equal(missingGroup.json.message, 'The group ID is missing')
  const unavailable = await request('GET', '/unavailable', bearer(alice))
  t.equal(unavailable.json.message, 'Service unavailable', '5xx: the generic message')
})

t.test('a role outside the hierarchy answers 500 on the first request, logged', async (t) => {
  const { request, logger } = await startApp(t, {}, routes)
  for (let i = 0; i < 2; i++) {
    const response = await request('GET', '/typo', bearer(mod))
    t.equal(response.status, 500)
    t.same(response.json, {
      statusCode: 500,
      error: 'Internal Server Error',
      message: 'Invalid keyhole options',
      code: 'KH_INVALID_OPTIONS',
    })
  }
  t.match(
    logger.lines.filter((line) => line.level === 'error'),
    [
      { details: { err: { message: /moderater/ } } },
      { details: { err: { message: /moderater/ } } },
    ],
  )
})

t.test('a known role is checked against the hierarchy once per middleware', async (t) => {
  const guard = requireRole('moderator')
  const first = await startApp(t, { capability: { roles: ['member', 'moderator', 'admin'] } })
  const second = await startApp(t, { capability: { roles: ['reader', 'admin'] } })
  for (const { app } of [first, second]) {
    app.get('/shared', guard, (_req, res) => void res.json({ ok: true }))
    app.use(keyholeErrors())
  }
  t.equal((await first.request('GET', '/shared', bearer(mod))).status, 200)
  t.equal((await second.request('GET', '/shared', bearer(mod))).status, 500, 'not in this one')
})

t.test('requireRole without the keyhole middleware in front refuses (500, says why)', async (t) => {
  const app = express()
  app.get('/mod', requireRole('moderator'), (_req, res) => void res.json({ ok: true }))
  app.use(keyholeErrors())
  const request = client((await serve(t, app)).base)
  const response = await request('GET', '/mod', bearer(mod))
  t.equal(response.status, 500)
  t.equal(response.json.code, 'KH_INVALID_OPTIONS')
})

t.test(
  'keyholeErrors() hands every other error on, and any error once headers are sent',
  async (t) => {
    const passed: unknown[] = []
    const { request } = await startApp(t, {}, (app) => {
      routes(app)
      app.get('/streaming', (_req, res, next) => {
        res.write('partial')
        next(new NotFound())
      })
      app.use(keyholeErrors())
      app.use(((error, _req, res, _next) => {
        passed.push(error)
        if (res.headersSent) return void res.end()
        res.status(418).json({ mine: true })
      }) as ErrorRequestHandler)
    })
    const boom = await request('GET', '/boom', bearer(alice))
    t.equal(boom.status, 418)
    t.same(boom.json, { mine: true })
    const streaming = await request('GET', '/streaming', bearer(alice))
    t.equal(streaming.status, 200)
    t.equal(streaming.text, 'partial')
    t.match(passed, [{ message: 'not keyhole' }, { code: 'KH_NOT_FOUND' }])
  },
)

t.test('denials reach the logger once, at info, without the token', async (t) => {
  const { request, logger } = await startApp(t, {}, routes)
  await request('GET', '/me')
  await request('GET', '/mod', bearer(alice))
  t.same(
    logger.lines.filter((line) => line.level === 'info'),
    [
      {
        level: 'info',
        details: { keyhole: { code: 'KH_TOKEN_MISSING', route: null, subject: null } },
        message: 'keyhole: request refused',
      },
      {
        level: 'info',
        details: { keyhole: { code: 'KH_FORBIDDEN', route: '/mod', subject: 'alice' } },
        message: 'keyhole: request refused',
      },
    ],
  )
  t.notMatch(JSON.stringify(logger.lines), alice)
})

t.test('logDenials: false keeps denials out of the log', async (t) => {
  const { request, logger } = await startApp(t, { logDenials: false }, (app) => {
    routes(app)
    app.get('/thrown', () => {
      throw new Forbidden()
    })
  })
  await request('GET', '/me')
  await request('GET', '/thrown', bearer(alice))
  t.same(logger.lines, [])
})

t.test('permissions with unknown roles are logged at debug, by count', async (t) => {
  const { request, logger } = await startApp(t, {}, routes)
  const token = await mint({
    permissions: [
      { group: groupA, role: 'member' },
      { group: groupA, role: 'owner' },
    ],
  })
  t.equal((await request('GET', '/me', bearer(token))).status, 200)
  t.same(logger.lines, [
    {
      level: 'debug',
      details: { keyhole: { ignored: 1 } },
      message: 'keyhole: permissions with unknown roles',
    },
  ])
})

t.test('a keyhole error outside the middleware still gets its answer', async (t) => {
  const app = express()
  app.get('/x', () => {
    throw new NotFound()
  })
  app.use(keyholeErrors())
  const request = client((await serve(t, app)).base)
  const response = await request('GET', '/x')
  t.equal(response.status, 404)
  t.equal(response.json.code, 'KH_NOT_FOUND')
})
