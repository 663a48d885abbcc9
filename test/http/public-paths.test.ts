/**
 * The `public` option on Express: the middleware runs before routing, so the entries are matched
 * against `req.path` — and must never cover more than Express routes to the public route. Each
 * path is sent raw (no client normalises it) to an app whose routes are the public ones, with no
 * token: a public path reaches its route with `req.capability === null`, anything else is 401.
 */
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import express from 'express'
import { capabilities, keyholeErrors } from '../../plugins/express.ts'
import { publicRequestPathMatcher } from '../../src/http/public-paths.ts'
import { baseOptions, serve } from '../plugins/helpers/express-app.ts'

/** The public entries, and the Express routes that serve them. */
const entries = ['/health', '/posts/:id', '/docs/*', '/', '/files/:name.json', '/range/:from-:to']
const routes = [
  '/health',
  '/posts/:id',
  '/docs',
  '/docs/*rest',
  '/',
  '/files/:name.json',
  '/range/:from-:to',
  // Protected routes a public entry must not open.
  '/files/:id',
  '/range/:id',
]

interface Raw {
  readonly status: number
  readonly body: string
}

/** GET `path` exactly as written. */
function get(port: number, path: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => resolve({ status: res.statusCode as number, body }))
    })
      .on('error', reject)
      .end()
  })
}

type Settings = { 'case sensitive routing'?: boolean; 'strict routing'?: boolean }

async function start(t: Test, settings: Settings = {}): Promise<number> {
  const keyhole = capabilities({ ...baseOptions, public: entries, logDenials: false })
  t.teardown(() => keyhole.close())
  const app = express()
  for (const [name, value] of Object.entries(settings)) app.set(name, value)
  app.use(keyhole)
  for (const route of routes) {
    app.get(route, (req, res) => void res.json({ route, capability: req.capability }))
  }
  app.use(keyholeErrors())
  const { server } = await serve(t, app)
  return (server.address() as AddressInfo).port
}

/** Path → the route it reaches without a token (undefined: 401). */
const table: [string, string | undefined][] = [
  ['/health', '/health'],
  ['/HEALTH', '/health'],
  ['/health/', '/health'],
  ['/health?probe=1', '/health'],
  ['/health//', undefined],
  ['/healthz', undefined],
  ['/health/x', undefined],
  ['/health%2Fx', undefined],
  ['/health%2F', undefined],
  ['//health', undefined],
  ['/%68ealth', undefined],
  ['/health;x', undefined],
  ['/x/../health', undefined],
  ['/health/.', undefined],
  ['/posts/1', '/posts/:id'],
  ['/posts/%2F', '/posts/:id'],
  ['/posts/', undefined],
  ['/posts', undefined],
  ['/posts/1/2', undefined],
  ['/posts//', undefined],
  ['/docs', '/docs'],
  ['/DOCS/', '/docs'],
  ['/docs/json', '/docs/*rest'],
  ['/docs/a/b', '/docs/*rest'],
  ['/docsx', undefined],
  ['/docs%2Fx', undefined],
  ['/docs//x', '/docs/*rest'],
  ['/', '/'],
  ['//', '/'],
  ['/admin', undefined],
  // A parameter is path-to-regexp's, as in Express's routes: text around it must be there too.
  ['/files/a.json', '/files/:name.json'],
  ['/files/a.JSON', '/files/:name.json'],
  ['/files/secret', undefined],
  ['/files/.json', undefined],
  ['/range/1-9', '/range/:from-:to'],
  ['/range/19', undefined],
]

t.test('public paths reach their route without a token; nothing else does', async (t) => {
  const port = await start(t)
  for (const [path, route] of table) {
    const answer = await get(port, path)
    if (route === undefined) {
      t.equal(answer.status, 401, `${path} needs a token`)
    } else {
      t.equal(answer.status, 200, `${path} is public`)
      t.same(JSON.parse(answer.body), { route, capability: null }, `${path} reaches ${route}`)
    }
  }
})

t.test("the app's case-sensitive and strict routing tighten the match", async (t) => {
  const port = await start(t, { 'case sensitive routing': true, 'strict routing': true })
  const cases: [string, number][] = [
    ['/health', 200],
    ['/HEALTH', 401],
    ['/health/', 401],
    ['/Docs/json', 401],
    ['/docs/json', 200],
    ['/posts/1', 200],
  ]
  for (const [path, status] of cases) t.equal((await get(port, path)).status, status, path)
})

t.test('entries are relative to where the middleware is mounted', async (t) => {
  const keyhole = capabilities({ ...baseOptions, public: ['/health'], logDenials: false })
  t.teardown(() => keyhole.close())
  const app = express()
  app.use('/api', keyhole)
  app.get('/api/health', (req, res) => void res.json({ capability: req.capability }))
  app.get('/health', (_req, res) => void res.json('outside keyhole'))
  app.use(keyholeErrors())
  const { server } = await serve(t, app)
  const port = (server.address() as AddressInfo).port
  t.equal((await get(port, '/api/health')).status, 200)
  t.equal((await get(port, '/api/api/health')).status, 401)
  t.equal((await get(port, '/health')).body, '"outside keyhole"', 'not behind the middleware')
})

t.test('an entry that is not a route path is refused when the middleware is made', async (t) => {
  for (const entry of ['/a/:', '/a/:/b', '/a/:"x']) {
    t.throws(
      () => capabilities({ ...baseOptions, public: [entry] }),
      { code: 'KH_INVALID_OPTIONS', message: /^Invalid option public: / },
      entry,
    )
  }
})

t.test('the matcher on its own: entries with a trailing slash, empty segments, none', async (t) => {
  t.equal(publicRequestPathMatcher([])('/anything'), false)
  const isPublic = publicRequestPathMatcher(['/a/', '/b//c', '/*x'])
  t.equal(isPublic('/a'), true)
  t.equal(isPublic('/a/', { strict: true }), true)
  t.equal(isPublic('/a', { strict: true }), false)
  t.equal(isPublic('/b/c'), false, 'an empty segment in an entry matches nothing')
  t.equal(isPublic('/b//c'), false)
  t.equal(isPublic('/*x'), true, 'a * inside an entry is a literal')
  t.equal(isPublic('/yx'), false)
  const everything = publicRequestPathMatcher(['/*'])
  t.ok(
    ['/', '/x', '/x/y/'].every((path) => everything(path)),
    "'/*' covers every path",
  )
  t.ok(everything('/', { strict: true }), "'/*' covers / under strict routing too")
})
