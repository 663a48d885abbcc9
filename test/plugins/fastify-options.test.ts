/**
 * Registration: every bad option is refused with `KH_INVALID_OPTIONS` and a message naming it; the
 * caller's options object is never mutated.
 */
import t from 'tap'
import Fastify from 'fastify'
import { capabilities, type FastifyKeyholeOptions } from '../../plugins/fastify.ts'
import { badAdapterOptions } from '../behaviour/helpers/bad-options.ts'
import { baseOptions, bearer, buildApp, mint } from './helpers/app.ts'

async function register(options: unknown) {
  const app = Fastify()
  try {
    await app.register(capabilities, options as FastifyKeyholeOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('bad options are refused at registration, naming the option', async (t) => {
  const cases = badAdapterOptions(baseOptions)
  for (const [name, options, names] of cases) {
    await t.rejects(register(options), { code: 'KH_INVALID_OPTIONS', message: names }, name)
  }
})

t.test("the caller's options object is never mutated", async (t) => {
  const options = {
    ...baseOptions,
    algorithms: [...baseOptions.algorithms],
    public: ['/health'],
    capability: { roles: ['member', 'moderator', 'admin'] },
  }
  const before = JSON.stringify(options)
  const frozen = structuredClone(options)
  deepFreeze(frozen)
  const { app } = await buildApp(t, frozen, (app) => {
    app.get('/me', async (request) => request.requireCapability().subject)
  })
  await buildApp(t, options)
  t.equal(JSON.stringify(options), before)
  const response = await app.inject({ method: 'GET', url: '/me', headers: bearer(await mint()) })
  t.equal(response.body, 'alice')
})

t.test('fastify.keyhole: realm, roles and health without a database', async (t) => {
  const { app } = await buildApp(t, { capability: { roles: ['reader', 'owner'] }, realm: 'api' })
  t.equal(app.keyhole.realm, 'api')
  t.same(app.keyhole.roles, ['reader', 'owner'])
  t.equal(app.keyhole.healthy, true)
  t.doesNotThrow(() => app.keyhole.assertHealthy())
})

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object') return
  Object.freeze(value)
  for (const inner of Object.values(value)) deepFreeze(inner)
}
