/**
 * requireScope on Fastify: a preHandler that answers 403 `KH_INSUFFICIENT_SCOPE` with RFC 6750's
 * `insufficient_scope` and the required scopes in the challenge, unless the token carries them
 * all; composed with requireRole in a preHandler list, whichever comes first answers. The shared
 * rows (both adapters) are in test/behaviour.
 */
import t from 'tap'
import { requireRole, requireScope } from '../../plugins/fastify.ts'
import { buildApp, G1, mint } from './helpers/keyhole-app.ts'

const insufficient = (scope: string) =>
  `Bearer realm="keyhole", error="insufficient_scope", error_description="Insufficient scope", scope="${scope}"`

t.test('one scope, several, and composed with requireRole', async (t) => {
  let reached = 0
  const handler = async () => {
    reached++
    return { ok: true }
  }
  const { app, logs } = await buildApp(t, {}, (app) => {
    app.get('/read', { preHandler: requireScope('forum:read') }, handler)
    app.get('/both', { preHandler: requireScope('forum:read', 'forum:write') }, handler)
    app.get(
      '/scope-then-role',
      { preHandler: [requireScope('forum:write'), requireRole('moderator')] },
      handler,
    )
    app.get(
      '/role-then-scope',
      { preHandler: [requireRole('moderator'), requireScope('forum:write')] },
      handler,
    )
  })
  const moderator = [{ group: G1, role: 'moderator' }]
  const holders = {
    none: { scope: undefined, permissions: moderator },
    reader: { scope: 'forum:read', permissions: [] },
    writer: { scp: ['forum:read', 'forum:write'], permissions: [] },
    writingModerator: { scope: 'forum:write forum:read', permissions: moderator },
    adminNoScope: { permissions: [{ group: G1, role: 'admin' }] },
  }
  // [holder, url, status, code, challenge scope]
  const rows: [keyof typeof holders, string, number, string?, string?][] = [
    ['reader', '/read', 200],
    ['writer', '/read', 200],
    ['none', '/read', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:read'],
    ['adminNoScope', '/read', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:read'],
    ['writer', '/both', 200],
    ['reader', '/both', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:read forum:write'],
    ['writingModerator', '/scope-then-role', 200],
    ['writingModerator', '/role-then-scope', 200],
    ['writer', '/scope-then-role', 403, 'KH_FORBIDDEN'],
    ['writer', '/role-then-scope', 403, 'KH_FORBIDDEN'],
    ['none', '/scope-then-role', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:write'],
    ['none', '/role-then-scope', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:write'],
  ]
  for (const [holder, url, status, code, scope] of rows) {
    const token = await mint({ sub: holder, ...holders[holder] })
    const before = reached
    const response = await app.inject({ url, headers: { authorization: `Bearer ${token}` } })
    t.equal(response.statusCode, status, `${holder} ${url}`)
    t.equal(reached - before, status === 200 ? 1 : 0, `${holder} ${url}: the handler`)
    if (code !== undefined) t.equal(response.json().code, code, `${holder} ${url}: ${code}`)
    if (scope !== undefined) {
      t.same(response.json(), {
        statusCode: 403,
        error: 'Forbidden',
        message: 'Insufficient scope',
        code: 'KH_INSUFFICIENT_SCOPE',
      })
      t.equal(response.headers['www-authenticate'], insufficient(scope))
    }
  }
  const refusals = logs().filter((line) => line.msg === 'keyhole: request refused')
  t.equal(refusals.length, 7, 'each 403 logged once')
  t.match(refusals[0], {
    level: 30,
    keyhole: { code: 'KH_INSUFFICIENT_SCOPE', route: '/read', subject: 'none' },
  })
})

t.test('a malformed scope claim is a 401 before any guard', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/read', { preHandler: requireScope('forum:read') }, async () => 'reached')
  })
  for (const claims of [{ scope: 42 }, { scope: 'a', scp: ['a'] }, { scp: ['forum:read', ''] }]) {
    const response = await app.inject({
      url: '/me',
      headers: { authorization: `Bearer ${await mint(claims)}` },
    })
    t.equal(response.statusCode, 401, JSON.stringify(claims))
    t.equal(response.json().code, 'KH_TOKEN_SCOPE')
    t.equal(
      response.headers['www-authenticate'],
      'Bearer realm="keyhole", error="invalid_token", error_description="The access token scopes are invalid"',
    )
  }
})

t.test('the realm, and a public route: 401 without a capability', async (t) => {
  const { app } = await buildApp(t, { realm: 'forum' }, (app) => {
    app.get(
      '/public',
      { config: { keyhole: { public: true } }, preHandler: requireScope('forum:read') },
      async () => 'reached',
    )
    app.get('/read', { preHandler: requireScope('forum:read') }, async () => 'reached')
  })
  const open = await app.inject({ url: '/public' })
  t.equal(open.statusCode, 401)
  t.equal(open.json().code, 'KH_TOKEN_MISSING')
  const refused = await app.inject({
    url: '/read',
    headers: { authorization: `Bearer ${await mint()}` },
  })
  t.equal(
    refused.headers['www-authenticate'],
    'Bearer realm="forum", error="insufficient_scope", error_description="Insufficient scope", scope="forum:read"',
  )
})

t.test('bad arguments are refused when the guard is created', async (t) => {
  t.throws(() => (requireScope as (...scopes: string[]) => unknown)(), {
    code: 'KH_INVALID_OPTIONS',
  })
  t.throws(() => requireScope('forum:read forum:write'), {
    code: 'KH_INVALID_OPTIONS',
    message: /argument 1 must be one scope/,
  })
})
