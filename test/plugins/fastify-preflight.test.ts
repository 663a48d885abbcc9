/**
 * CORS preflights: a request without a valid token never reaches a handler, preflight or not. A
 * fake preflight (OPTIONS with `Access-Control-Request-Method`, no token) is answered 401 like
 * any request, the same on every path, so it neither runs `app.all()` handlers nor tells which
 * routes exist. Real preflights are @fastify/cors's: registered before keyhole, its `onRequest`
 * hook answers them (204 and its headers) before keyhole's hook runs; registered after, preflights
 * fail closed (401).
 */
import t, { type Test } from 'tap'
import cors from '@fastify/cors'
import Fastify, { type FastifyInstance } from 'fastify'
import { capabilities } from '../../plugins/fastify.ts'
import { baseOptions, bearer, mint } from './helpers/app.ts'

const origin = 'https://app.example'
const preflight = { origin, 'access-control-request-method': 'POST' }
const paths = ['/export', '/private', '/known', '/no/such/route']

type Order = 'none' | 'cors first' | 'cors after'

/** keyhole with or without @fastify/cors; `reached` lists every handler run. */
async function build(t: Test, order: Order) {
  const reached: string[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  if (order === 'cors first') await app.register(cors, { origin })
  await app.register(capabilities, baseOptions)
  if (order === 'cors after') await app.register(cors, { origin })
  routes(app, reached)
  await app.ready()
  return { app, reached }
}

function routes(app: FastifyInstance, reached: string[]) {
  app.all('/export', async (request) => {
    reached.push(`${request.method} /export`)
    return { rows: ['every', 'row'] }
  })
  app.options('/private', async (_request, reply) => {
    reached.push('OPTIONS /private')
    return reply.code(204).send()
  })
  app.get('/known', async () => {
    reached.push('GET /known')
    return { ok: true }
  })
}

t.test(
  'without a CORS plugin a fake preflight reaches no handler and reveals nothing',
  async (t) => {
    const { app, reached } = await build(t, 'none')
    const bodies = new Set<string>()
    for (const url of paths) {
      const response = await app.inject({ method: 'OPTIONS', url, headers: preflight })
      t.equal(response.statusCode, 401, `${url}: 401`)
      t.equal(response.json().code, 'KH_TOKEN_MISSING', url)
      t.equal(response.headers['www-authenticate'], 'Bearer realm="keyhole"', url)
      t.equal(response.headers.allow, undefined, `${url}: no Allow header`)
      bodies.add(response.body)
    }
    t.equal(bodies.size, 1, 'the same answer on every path: routes cannot be enumerated')
    t.same(reached, [], 'no handler ran')

    const token = await mint()
    const signed = { ...preflight, ...bearer(token) }
    const response = await app.inject({ method: 'OPTIONS', url: '/export', headers: signed })
    t.equal(response.statusCode, 200, 'with a valid token the request is an ordinary one')
    t.same(reached, ['OPTIONS /export'])
  },
)

t.test('@fastify/cors registered before keyhole answers real preflights', async (t) => {
  const { app, reached } = await build(t, 'cors first')
  const answers = new Set<string>()
  for (const url of paths) {
    const response = await app.inject({ method: 'OPTIONS', url, headers: preflight })
    t.equal(response.statusCode, 204, `${url}: 204`)
    t.equal(response.headers['access-control-allow-origin'], origin, url)
    t.equal(response.headers['access-control-allow-methods'], 'GET,HEAD,POST', url)
    t.equal(response.body, '', url)
    answers.add(JSON.stringify([response.statusCode, response.headers.allow, response.body]))
  }
  t.equal(answers.size, 1, 'the same answer on every path')
  t.same(reached, [], 'no handler ran')

  const anonymous = await app.inject({ method: 'POST', url: '/export', headers: { origin } })
  t.equal(anonymous.statusCode, 401, 'the actual request still needs a token')
  t.equal(anonymous.headers['access-control-allow-origin'], origin, 'a browser can read the 401')
  const token = await mint()
  const signed = await app.inject({
    method: 'POST',
    url: '/export',
    headers: { origin, ...bearer(token) },
  })
  t.equal(signed.statusCode, 200)
  t.equal(signed.headers['access-control-allow-origin'], origin)
  t.same(reached, ['POST /export'])
})

t.test('@fastify/cors registered after keyhole: preflights fail closed', async (t) => {
  const { app, reached } = await build(t, 'cors after')
  for (const url of paths) {
    const response = await app.inject({ method: 'OPTIONS', url, headers: preflight })
    t.equal(response.statusCode, 401, `${url}: 401, keyhole's hook runs first`)
    t.equal(response.json().code, 'KH_TOKEN_MISSING', url)
  }
  t.same(reached, [], 'no handler ran')
})
