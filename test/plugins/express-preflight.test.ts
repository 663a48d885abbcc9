/**
 * CORS preflights: a request without a valid token never reaches a handler, preflight or not. A
 * fake preflight (OPTIONS with `Access-Control-Request-Method`, no token) is answered 401 like any
 * request, the same on every path: it runs no mounted router nor `app.all()` handler, and Express's
 * automatic OPTIONS answer (200 with the route's methods in `Allow`, 404 for unknown paths) never
 * tells which routes exist. Real preflights are the `cors` middleware's: mounted before keyhole it
 * answers them (204 and its headers); mounted after, preflights fail closed (401).
 */
import t, { type Test } from 'tap'
import cors from 'cors'
import express, { Router, type Express } from 'express'
import { capabilities, keyholeErrors } from '../../plugins/express.ts'
import { baseOptions, bearer, client, memoryLogger, mint, serve } from './helpers/express-app.ts'

const origin = 'https://app.example'
const preflight = { origin, 'access-control-request-method': 'POST' }
const paths = ['/admin', '/admin/users', '/export', '/known', '/no/such/route']

type Order = 'none' | 'cors first' | 'cors after'

/** keyhole with or without `cors`; `reached` lists every handler run. */
async function start(t: Test, order: Order) {
  const reached: string[] = []
  const keyhole = capabilities({ ...baseOptions, logger: memoryLogger() })
  t.teardown(() => keyhole.close())
  const app = express()
  if (order === 'cors first') app.use(cors({ origin }))
  app.use(keyhole)
  if (order === 'cors after') app.use(cors({ origin }))
  routes(app, reached)
  app.use(keyholeErrors())
  const { base } = await serve(t, app)
  await keyhole.ready()
  return { request: client(base), reached }
}

function routes(app: Express, reached: string[]) {
  const admin = Router()
  admin.use((req, res) => {
    reached.push(`${req.method} /admin${req.path}`)
    res.json({ users: ['alice', 'bob'] })
  })
  app.use('/admin', admin)
  app.all('/export', (req, res) => {
    reached.push(`${req.method} /export`)
    res.json({ rows: ['every', 'row'] })
  })
  app.get('/known', (_req, res) => {
    reached.push('GET /known')
    res.json({ ok: true })
  })
}

t.test(
  'without a CORS plugin a fake preflight reaches no handler and reveals nothing',
  async (t) => {
    const { request, reached } = await start(t, 'none')
    const bodies = new Set<string>()
    for (const path of paths) {
      const response = await request('OPTIONS', path, preflight)
      t.equal(response.status, 401, `${path}: 401`)
      t.equal(response.json?.code, 'KH_TOKEN_MISSING', path)
      t.equal(response.headers.get('www-authenticate'), 'Bearer realm="keyhole"', path)
      t.equal(response.headers.get('allow'), null, `${path}: no Allow header`)
      bodies.add(response.text)
    }
    t.equal(bodies.size, 1, 'the same answer on every path: routes cannot be enumerated')
    t.same(reached, [], 'no handler ran')

    const token = await mint()
    const signed = await request('OPTIONS', '/admin', { ...preflight, ...bearer(token) })
    t.equal(signed.status, 200, 'with a valid token the request is an ordinary one')
    t.same(reached, ['OPTIONS /admin/'])
  },
)

t.test('cors mounted before keyhole answers real preflights', async (t) => {
  const { request, reached } = await start(t, 'cors first')
  const answers = new Set<string>()
  for (const path of paths) {
    const response = await request('OPTIONS', path, preflight)
    t.equal(response.status, 204, `${path}: 204`)
    t.equal(response.headers.get('access-control-allow-origin'), origin, path)
    t.equal(response.headers.get('access-control-allow-methods'), 'GET,HEAD,PUT,PATCH,POST,DELETE')
    t.equal(response.headers.get('allow'), null, `${path}: no Allow header`)
    answers.add(JSON.stringify([response.status, response.text]))
  }
  t.equal(answers.size, 1, 'the same answer on every path')
  t.same(reached, [], 'no handler ran')

  const anonymous = await request('POST', '/export', { origin })
  t.equal(anonymous.status, 401, 'the actual request still needs a token')
  t.equal(anonymous.headers.get('access-control-allow-origin'), origin, 'a browser can read it')
  const token = await mint()
  const signed = await request('POST', '/export', { origin, ...bearer(token) })
  t.equal(signed.status, 200)
  t.equal(signed.headers.get('access-control-allow-origin'), origin)
  t.same(reached, ['POST /export'])
})

t.test('cors mounted after keyhole: preflights fail closed', async (t) => {
  const { request, reached } = await start(t, 'cors after')
  for (const path of paths) {
    const response = await request('OPTIONS', path, preflight)
    t.equal(response.status, 401, `${path}: 401, keyhole runs first`)
    t.equal(response.json?.code, 'KH_TOKEN_MISSING', path)
  }
  t.same(reached, [], 'no handler ran')
})
