/**
 * The plugin's error handler: keyhole errors answer with their status, headers and `toJSON()` body;
 * a keyhole 5xx answers with the catalogue's generic message (the detail goes to the log); every
 * other error goes to the handler that was there before (the application's, or Fastify's).
 */
import t from 'tap'
import Fastify from 'fastify'
import { capabilities } from '../../plugins/fastify.ts'
import { CapabilityDenied, ConfigurationError } from '../../src/errors.ts'
import { baseOptions, bearer, buildApp, mint } from './helpers/app.ts'

t.test('other errors reach the previous handler: Fastify default', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/boom', async () => {
      throw new Error('database password is hunter2')
    })
  })
  const response = await app.inject({ method: 'GET', url: '/boom', headers: bearer(await mint()) })
  t.equal(response.statusCode, 500)
  t.equal(response.json().statusCode, 500)
})

t.test("other errors reach the previous handler: the application's own", async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.setErrorHandler((error, _request, reply) =>
    reply.code(418).send({ mine: (error as Error).message }),
  )
  await app.register(capabilities, baseOptions)
  app.get('/boom', async () => {
    throw new Error('boom')
  })
  app.get('/denied', async () => {
    throw new CapabilityDenied({ table: 'posts', operation: 'update', visible: true })
  })
  const token = await mint()
  const boom = await app.inject({ method: 'GET', url: '/boom', headers: bearer(token) })
  t.equal(boom.statusCode, 418)
  t.same(boom.json(), { mine: 'boom' })
  const denied = await app.inject({ method: 'GET', url: '/denied', headers: bearer(token) })
  t.equal(denied.statusCode, 403)
  t.same(denied.json(), {
    statusCode: 403,
    error: 'Forbidden',
    message: 'The capability does not allow update on posts',
    code: 'KH_CAPABILITY_DENIED',
  })
  const anonymous = await app.inject({ method: 'GET', url: '/boom' })
  t.equal(anonymous.statusCode, 401, 'keyhole errors stay with keyhole')
})

t.test('a keyhole 5xx answers the generic message and logs the detail at error', async (t) => {
  const { app, logLines } = await buildApp(t, {}, (app) => {
    app.get('/misconfigured', async () => {
      throw new ConfigurationError('KH_NO_POLICY', 'No read policy for table "secret_table"')
    })
    app.get('/invisible', async () => {
      throw new CapabilityDenied({ table: 'posts', operation: 'delete', visible: false })
    })
  })
  const token = await mint()
  const response = await app.inject({
    method: 'GET',
    url: '/misconfigured',
    headers: bearer(token),
  })
  t.equal(response.statusCode, 500)
  t.same(response.json(), {
    statusCode: 500,
    error: 'Internal Server Error',
    message: 'No policy allows this operation on this table',
    code: 'KH_NO_POLICY',
  })
  const errors = logLines().filter((line) => line.level === 50)
  t.equal(errors.length, 1)
  t.match(JSON.stringify(errors[0]), 'secret_table')

  const invisible = await app.inject({ method: 'GET', url: '/invisible', headers: bearer(token) })
  t.equal(invisible.statusCode, 404)
  t.same(invisible.json(), {
    statusCode: 404,
    error: 'Not Found',
    message: 'Not found',
    code: 'KH_NOT_FOUND',
  })
})

t.test("public: ['/*'] makes every registered route public", async (t) => {
  const { app } = await buildApp(t, { public: ['/*'] }, (app) => {
    app.get('/', async () => 'root')
    app.get('/a/b', async () => 'deep')
  })
  t.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/a/b' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/missing' })).statusCode, 401)
})
