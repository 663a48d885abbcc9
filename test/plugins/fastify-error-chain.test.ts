/**
 * An application error handler set AFTER keyhole in the same scope replaces keyhole's; when it
 * rethrows a keyhole error, Fastify hands it back to keyhole's handler (status, header, body).
 */
import Fastify from 'fastify'
import t from 'tap'
import { capabilities } from '../../plugins/fastify.ts'
import { isKeyholeError } from '../../src/errors.ts'
import { baseOptions, challenge, mint } from './helpers/keyhole-app.ts'

t.test('a later handler that rethrows keyhole errors hands them back', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(capabilities, baseOptions)
  app.setErrorHandler((error, _request, reply) => {
    if (isKeyholeError(error)) throw error
    return reply.code(418).send({ mine: true })
  })
  app.get('/boom', async () => {
    throw new Error('boom')
  })
  await app.ready()
  const refused = await app.inject({ url: '/boom' })
  t.equal(refused.statusCode, 401)
  t.equal(refused.headers['www-authenticate'], challenge())
  t.equal(refused.json().code, 'KH_TOKEN_MISSING')
  const boom = await app.inject({
    url: '/boom',
    headers: { authorization: `Bearer ${await mint()}` },
  })
  t.same(boom.json(), { mine: true })
})
