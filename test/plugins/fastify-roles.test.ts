/**
 * `requireRole(role, { group })`: 403 `KH_FORBIDDEN` (`insufficient_scope`) unless the holder has
 * the role or a higher one (anywhere, or in the group), or is admin; a malformed group is 400 and
 * never reaches SQL; an unknown role fails at start-up.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { requireRole } from '../../plugins/fastify.ts'
import { bearer, buildApp, groupA, groupB, mint, tokenFor } from './helpers/app.ts'

const forbidden =
  'Bearer realm="keyhole", error="insufficient_scope", error_description="Insufficient role"'

function routes(app: FastifyInstance) {
  const inGroup = (request: { params: unknown }) => (request.params as { id: string }).id
  app.get('/anywhere/member', { preHandler: requireRole('member') }, async () => 'ok')
  app.get('/anywhere/moderator', { preHandler: requireRole('moderator') }, async () => 'ok')
  app.get(
    '/groups/:id/member',
    { preHandler: requireRole('member', { group: inGroup }) },
    async () => 'ok',
  )
  app.get(
    '/groups/:id/moderator',
    { preHandler: [requireRole('moderator', { group: inGroup })] },
    async () => 'ok',
  )
  app.get(
    '/missing-group',
    { preHandler: requireRole('member', { group: () => undefined }) },
    async () => 'ok',
  )
  app.get(
    '/public-but-guarded',
    { config: { keyhole: { public: true } }, preHandler: requireRole('member') },
    async () => 'ok',
  )
}

t.test('the hierarchy, groups and admin decide; refusals are 403 insufficient_scope', async (t) => {
  const { app } = await buildApp(t, {}, routes)
  const tokens = {
    member: await tokenFor('member', [{ group: groupA, role: 'member' }]),
    moderator: await tokenFor('moderator', [{ group: groupA, role: 'moderator' }]),
    admin: await tokenFor('admin', [{ group: randomUUID(), role: 'admin' }]),
    nobody: await tokenFor('nobody', []),
    unknownRole: await tokenFor('typo', [{ group: groupA, role: 'Moderator' }]),
  }
  const cases: [keyof typeof tokens, string, number][] = [
    ['member', '/anywhere/member', 200],
    ['member', '/anywhere/moderator', 403],
    ['member', `/groups/${groupA}/member`, 200],
    ['member', `/groups/${groupB}/member`, 403],
    ['member', `/groups/${groupA}/moderator`, 403],
    ['moderator', '/anywhere/member', 200],
    ['moderator', '/anywhere/moderator', 200],
    ['moderator', `/groups/${groupA}/member`, 200],
    ['moderator', `/groups/${groupA}/moderator`, 200],
    ['moderator', `/groups/${groupB}/moderator`, 403],
    ['admin', '/anywhere/moderator', 200],
    ['admin', `/groups/${groupB}/moderator`, 200],
    ['admin', `/groups/${groupA.toUpperCase()}/moderator`, 200],
    ['nobody', '/anywhere/member', 403],
    ['nobody', `/groups/${groupA}/member`, 403],
    ['unknownRole', `/groups/${groupA}/member`, 403],
  ]
  for (const [who, url, status] of cases) {
    const response = await app.inject({ method: 'GET', url, headers: bearer(tokens[who]) })
    t.equal(response.statusCode, status, `${who} ${url}`)
    if (status === 403) {
      t.equal(response.json().code, 'KH_FORBIDDEN')
      t.equal(response.headers['www-authenticate'], forbidden)
    }
  }
})

t.test('a group that is not a group ID answers 400 before any check', async (t) => {
  const { app } = await buildApp(t, {}, routes)
  const admin = await tokenFor('admin', [{ group: groupA, role: 'admin' }])
  for (const url of [
    '/groups/1,3/member',
    '/groups/1);--/member',
    '/groups/x/member',
    '/missing-group',
  ]) {
    const response = await app.inject({ method: 'GET', url, headers: bearer(admin) })
    t.equal(response.statusCode, 400, url)
    t.equal(response.json().code, 'KH_BAD_REQUEST', url)
    t.equal(response.headers['www-authenticate'], undefined)
  }
})

t.test('requireRole on a route without a capability answers 401', async (t) => {
  const { app } = await buildApp(t, {}, routes)
  const response = await app.inject({ method: 'GET', url: '/public-but-guarded' })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'KH_TOKEN_MISSING')
  t.equal(response.headers['www-authenticate'], 'Bearer realm="keyhole"')
})

t.test('a configured hierarchy: custom roles and admin role', async (t) => {
  const { app } = await buildApp(
    t,
    { capability: { roles: ['reader', 'writer', 'owner'] } },
    (app) => {
      app.get('/write', { preHandler: requireRole('writer') }, async () => 'ok')
    },
  )
  const cases: [string, number][] = [
    ['reader', 403],
    ['writer', 200],
    ['owner', 200],
  ]
  for (const [role, status] of cases) {
    const token = await mint({ permissions: [{ group: groupA, role }] })
    const response = await app.inject({ method: 'GET', url: '/write', headers: bearer(token) })
    t.equal(response.statusCode, status, role)
  }
})

t.test('a role outside the hierarchy fails at start-up, naming the role', async (t) => {
  await t.rejects(
    buildApp(t, {}, (app) => {
      app.get('/typo', { preHandler: requireRole('moderater') }, async () => 'ok')
    }),
    { code: 'KH_INVALID_OPTIONS', message: /"moderater"/ },
  )
})

t.test('requireRole refuses a bad role or group option when called', async (t) => {
  const bad: [string, () => unknown][] = [
    ['empty role', () => requireRole('')],
    ['role not a string', () => requireRole(42 as unknown as string)],
    ['group not a function', () => requireRole('member', { group: 'id' as never })],
  ]
  for (const [name, call] of bad) t.throws(call, { code: 'KH_INVALID_OPTIONS' }, name)
})

t.test('a route registered before keyhole is still checked (on the request)', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { capabilities } = await import('../../plugins/fastify.ts')
  const { baseOptions } = await import('./helpers/app.ts')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(async (child) => {
    child.get('/early', { preHandler: requireRole('moderator') }, async () => 'ok')
  })
  await app.register(capabilities, baseOptions)
  await app.ready()
  const member = await mint()
  const response = await app.inject({ method: 'GET', url: '/early', headers: bearer(member) })
  t.equal(response.statusCode, 403)
})
