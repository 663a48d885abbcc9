/**
 * Key rotation with `getKey`: keyhole cannot see the application's key store change, so the
 * application says so with `invalidate()`, reachable from each public entry point — the core
 * authenticator (`keyhole`), `fastify.keyhole` (`keyhole/fastify`) and the middleware object
 * (`keyhole/express`). After it, a token verified with a withdrawn key is refused, cached or not.
 */
import express from 'express'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { capabilities as expressKeyhole, keyholeErrors } from '../../plugins/express.ts'
import { capabilities as fastifyKeyhole } from '../../plugins/fastify.ts'
import { createAuthenticator } from '../../src/index.ts'
import type { Algorithm, GetKey } from '../../src/options.ts'
import { audience, claims, issuer, keys, sign } from '../helpers/tokens.ts'

const first = await keys('ES256', 'key-1')
const second = await keys('ES256', 'key-2')
const withFirst = await sign(claims(), first.privateKey, { alg: 'ES256', kid: 'key-1' })
const withSecond = await sign(claims(), second.privateKey, { alg: 'ES256', kid: 'key-2' })
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** The application's own key store, read by getKey; the lookups are counted. */
function keyStore() {
  const store = new Map([
    ['key-1', first.publicKey],
    ['key-2', second.publicKey],
  ])
  const calls = { count: 0 }
  const getKey: GetKey = (header) => {
    calls.count++
    return store.get(header.kid as string)
  }
  return {
    store,
    calls,
    options: { getKey, algorithms: ['ES256'] as Algorithm[], issuer, audience },
  }
}

t.test('keyhole: authenticator.invalidate() withdraws cached tokens', async (t) => {
  const { store, calls, options } = keyStore()
  const authenticator = await createAuthenticator(options)
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  t.ok(await authenticator.authenticate(bearer(withSecond)))
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  t.equal(calls.count, 2, 'the third request was a cache hit')
  store.delete('key-1')
  t.ok(await authenticator.authenticate(bearer(withFirst)), 'still cached: nobody said')
  authenticator.invalidate()
  const error = await authenticator.authenticate(bearer(withFirst)).catch((e) => e)
  t.match(error, { code: 'KH_TOKEN_KEY_UNKNOWN', statusCode: 401 })
  t.ok(await authenticator.authenticate(bearer(withSecond)), 'another key still verifies')
  t.ok(await authenticator.authenticate(bearer(withSecond)))
  t.equal(calls.count, 4, 'checked once again, then cached again')
})

t.test('keyhole: a verification in flight during invalidate() is not trusted later', async (t) => {
  const { calls, options } = keyStore()
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => (release = resolve))
  const authenticator = await createAuthenticator({
    ...options,
    getKey: async (header, token) => {
      await gate
      return options.getKey(header, token)
    },
  })
  const pending = authenticator.authenticate(bearer(withFirst))
  authenticator.invalidate()
  release()
  t.ok(await pending)
  t.ok(await authenticator.authenticate(bearer(withFirst)))
  t.equal(calls.count, 2, 'the entry made before invalidate() was checked again')
})

t.test('keyhole/fastify: fastify.keyhole.invalidate()', async (t) => {
  const { store, options } = keyStore()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyKeyhole, options)
  app.get('/me', async (request) => ({ subject: request.requireCapability().subject }))
  const get = () => app.inject({ url: '/me', headers: bearer(withFirst) })
  t.equal((await get()).statusCode, 200)
  store.delete('key-1')
  t.equal((await get()).statusCode, 200, 'cached')
  app.keyhole.invalidate()
  const response = await get()
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'KH_TOKEN_KEY_UNKNOWN')
})

t.test('keyhole/express: the middleware’s invalidate()', async (t) => {
  const { store, options } = keyStore()
  const keyhole = expressKeyhole(options)
  keyhole.invalidate()
  t.pass('callable before the keys are imported')
  await keyhole.ready()
  const app = express()
  app.use(keyhole)
  app.get('/me', (req, res) => {
    res.json({ subject: req.requireCapability().subject })
  })
  app.use(keyholeErrors())
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => {
    server.close()
    return keyhole.close()
  })
  const { port } = server.address() as AddressInfo
  const get = () => fetch(`http://127.0.0.1:${port}/me`, { headers: bearer(withFirst) })
  t.equal((await get()).status, 200)
  store.delete('key-1')
  t.equal((await get()).status, 200, 'cached')
  keyhole.invalidate()
  const response = await get()
  t.equal(response.status, 401)
  t.equal(((await response.json()) as { code: string }).code, 'KH_TOKEN_KEY_UNKNOWN')
})
