/**
 * requireRole: 403 `KH_FORBIDDEN` with `insufficient_scope` unless the holder has the role (or a
 * higher one) anywhere, or in the route's group; admins pass everywhere. A malformed or missing
 * group answers 400 before anything else; an unknown role fails at start-up.
 */
import Fastify from 'fastify'
import t from 'tap'
import { capabilities, requireRole } from '../../plugins/fastify.ts'
import { baseOptions, buildApp, challenge, G1, G2, mint } from './helpers/keyhole-app.ts'

const forbidden = challenge('insufficient_scope', 'Insufficient role')

t.test('with and without a group, the hierarchy and admin', async (t) => {
  const { app, logs } = await buildApp(t, {}, (app) => {
    app.get('/member', { preHandler: requireRole('member') }, async () => 'ok')
  })
  const holders = {
    nobody: [],
    member: [{ group: G1, role: 'member' }],
    moderatorG1: [{ group: G1, role: 'moderator' }],
    adminElsewhere: [{ group: G2, role: 'admin' }],
    capitalised: [{ group: G1, role: 'Moderator' }],
  }
  // [holder, url, status]
  const rows: [keyof typeof holders, string, number][] = [
    ['member', '/member', 200],
    ['moderatorG1', '/member', 200],
    ['nobody', '/member', 403],
    ['capitalised', '/member', 403],
    ['capitalised', `/groups/${G1}/mod`, 403],
    ['nobody', '/mod', 403],
    ['member', '/mod', 403],
    ['moderatorG1', '/mod', 200],
    ['adminElsewhere', '/mod', 200],
    ['nobody', `/groups/${G1}/mod`, 403],
    ['member', `/groups/${G1}/mod`, 403],
    ['moderatorG1', `/groups/${G1}/mod`, 200],
    ['moderatorG1', `/groups/${G1.toUpperCase()}/mod`, 200],
    ['moderatorG1', `/groups/${G2}/mod`, 403],
    ['adminElsewhere', `/groups/${G1}/mod`, 200],
  ]
  for (const [holder, url, status] of rows) {
    const token = await mint({ sub: holder, permissions: holders[holder] })
    const response = await app.inject({
      method: 'GET',
      url,
      headers: { authorization: `Bearer ${token}` },
    })
    t.equal(response.statusCode, status, `${holder} ${url}`)
    if (status === 403) {
      t.same(response.json(), {
        statusCode: 403,
        error: 'Forbidden',
        message: 'Insufficient role',
        code: 'KH_FORBIDDEN',
      })
      t.equal(response.headers['www-authenticate'], forbidden)
    }
  }
  const refusals = logs().filter((line) => line.msg === 'keyhole: request refused')
  t.equal(refusals.length, 8, 'each 403 logged once')
  t.match(refusals[3], {
    level: 30,
    keyhole: { code: 'KH_FORBIDDEN', route: '/mod', subject: 'nobody' },
  })
  t.match(refusals[2], { keyhole: { route: '/groups/:groupId/mod' } })
})

t.test('a malformed group from the path is 400 and never reaches the handler', async (t) => {
  const { app } = await buildApp(t)
  const token = await mint({ permissions: [{ group: G1, role: 'admin' }] })
  for (const bad of ['1', '1,3', '1);--', 'not-a-uuid', `${G1}'--`, `${G1},${G2}`]) {
    const response = await app.inject({
      method: 'GET',
      url: `/groups/${encodeURIComponent(bad)}/mod`,
      headers: { authorization: `Bearer ${token}` },
    })
    t.equal(response.statusCode, 400, bad)
    t.equal(response.json().code, 'KH_BAD_REQUEST')
  }
})

t.test('a group function that finds nothing is 400, never "anywhere"', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get(
      '/typo/:groupId',
      {
        preHandler: requireRole('member', {
          group: (request) => (request.params as { groupID?: string }).groupID,
        }),
      },
      async () => 'reached',
    )
  })
  const token = await mint({ permissions: [{ group: G1, role: 'member' }] })
  const response = await app.inject({
    method: 'GET',
    url: `/typo/${G1}`,
    headers: { authorization: `Bearer ${token}` },
  })
  t.equal(response.statusCode, 400)
  t.equal(response.json().code, 'KH_BAD_REQUEST')
})

t.test('configured hierarchy and realm', async (t) => {
  const { app } = await buildApp(
    t,
    { realm: 'forum', capability: { roles: ['reader', 'moderator', 'writer', 'owner'] } },
    (app) => {
      app.get('/write', { preHandler: requireRole('writer') }, async () => 'ok')
    },
  )
  const owner = await mint({ permissions: [{ group: G1, role: 'owner' }] })
  const reader = await mint({ permissions: [{ group: G1, role: 'reader' }] })
  const auth = (token: string) => ({ authorization: `Bearer ${token}` })
  t.equal((await app.inject({ url: '/write', headers: auth(owner) })).statusCode, 200)
  const refused = await app.inject({ url: '/write', headers: auth(reader) })
  t.equal(refused.statusCode, 403)
  t.equal(
    refused.headers['www-authenticate'],
    'Bearer realm="forum", error="insufficient_scope", error_description="Insufficient role"',
  )
})

t.test('an unknown role fails when the route is registered', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(capabilities, baseOptions)
  t.throws(() => app.get('/x', { preHandler: [requireRole('moderater')] }, async () => 'x'), {
    code: 'KH_INVALID_OPTIONS',
    message: /moderater/,
  })
  void app.register(async (child) => {
    child.get('/y', { preHandler: requireRole('moderater') }, async () => 'y')
  })
  await t.rejects(
    async () => {
      await app.ready()
    },
    { code: 'KH_INVALID_OPTIONS' },
    'in a child plugin: the start-up fails',
  )
})

t.test('an unknown role on a route keyhole did not see fails closed with 500', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  // Registered before keyhole: no onRoute check, so the first request finds the typo.
  app.get('/early', { preHandler: requireRole('moderater') }, async () => 'x')
  await app.register(capabilities, baseOptions)
  const token = await mint({ permissions: [{ group: G1, role: 'admin' }] })
  const response = await app.inject({
    url: '/early',
    headers: { authorization: `Bearer ${token}` },
  })
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, 'KH_INVALID_OPTIONS')
})

t.test('a route registered before keyhole is still checked, on the request', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(async (child) => {
    child.get('/early', { preHandler: requireRole('moderator') }, async () => 'ok')
  })
  await app.register(capabilities, baseOptions)
  const member = await mint({ permissions: [{ group: G1, role: 'member' }] })
  const response = await app.inject({
    url: '/early',
    headers: { authorization: `Bearer ${member}` },
  })
  t.equal(response.statusCode, 403)
  t.equal(response.json().code, 'KH_FORBIDDEN')
})

t.test('requireRole on a public route answers 401 without a token', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get(
      '/public-but-guarded',
      { config: { keyhole: { public: true } }, preHandler: requireRole('member') },
      async () => 'ok',
    )
  })
  const response = await app.inject({ url: '/public-but-guarded' })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'KH_TOKEN_MISSING')
  t.equal(response.headers['www-authenticate'], challenge())
})

t.test('without keyhole, requireRole answers 401', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/x', { preHandler: requireRole('member') }, async () => 'x')
  const response = await app.inject({ url: '/x' })
  t.equal(response.statusCode, 401)
})

t.test('requireRole refuses bad arguments', async (t) => {
  t.throws(() => requireRole(''), { code: 'KH_INVALID_OPTIONS' })
  t.throws(() => requireRole(42 as unknown as string), { code: 'KH_INVALID_OPTIONS' })
  t.throws(() => requireRole('member', { group: 'groupId' as unknown as () => string }), {
    code: 'KH_INVALID_OPTIONS',
    message: /requireRole\.group/,
  })
})
