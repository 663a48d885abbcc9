/**
 * requireScope on Express: a middleware that answers 403 `KH_INSUFFICIENT_SCOPE` with the required
 * scopes in the challenge unless the token carries them all, composed with requireRole in the
 * route's chain, and that refuses (500, says why) without the keyhole middleware in front. The
 * shared rows (both adapters) are in test/behaviour.
 */
import t from 'tap'
import express from 'express'
import { keyholeErrors, requireRole, requireScope } from '../../plugins/express.ts'
import { bearer, client, groupA, mint, serve, startApp } from './helpers/express-app.ts'

const insufficient = (scope: string) =>
  `Bearer realm="keyhole", error="insufficient_scope", error_description="Insufficient scope", scope="${scope}"`

t.test('one scope, several, and composed with requireRole', async (t) => {
  let reached = 0
  const ok = (_req: unknown, res: express.Response) => {
    reached++
    res.json({ ok: true })
  }
  const { request, logger } = await startApp(t, {}, (app) => {
    app.get('/read', requireScope('forum:read'), ok)
    app.get('/both', requireScope('forum:read', 'forum:write'), ok)
    app.get(
      '/write/:groupId',
      requireScope('forum:write'),
      requireRole('moderator', { group: (req) => req.params.groupId }),
      ok,
    )
  })
  const moderator = [{ group: groupA, role: 'moderator' }]
  const holders = {
    reader: await mint({ sub: 'reader', scope: 'forum:read' }),
    writer: await mint({ sub: 'writer', scp: 'forum:read forum:write' }),
    writingModerator: await mint({ sub: 'wm', scope: 'forum:write', permissions: moderator }),
    moderator: await mint({ sub: 'mo', permissions: moderator }),
  }
  const rows: [keyof typeof holders, string, number, string?, string?][] = [
    ['reader', '/read', 200],
    ['moderator', '/read', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:read'],
    ['writer', '/both', 200],
    ['reader', '/both', 403, 'KH_INSUFFICIENT_SCOPE', 'forum:read forum:write'],
    ['writingModerator', `/write/${groupA}`, 200],
    ['writer', `/write/${groupA}`, 403, 'KH_FORBIDDEN'],
    ['moderator', `/write/${groupA}`, 403, 'KH_INSUFFICIENT_SCOPE', 'forum:write'],
  ]
  for (const [holder, path, status, code, scope] of rows) {
    const before = reached
    const response = await request('GET', path, bearer(holders[holder]))
    t.equal(response.status, status, `${holder} ${path}`)
    t.equal(reached - before, status === 200 ? 1 : 0, `${holder} ${path}: the handler`)
    if (code !== undefined) t.equal(response.json.code, code, `${holder} ${path}: ${code}`)
    if (scope !== undefined) {
      t.same(response.json, {
        statusCode: 403,
        error: 'Forbidden',
        message: 'Insufficient scope',
        code: 'KH_INSUFFICIENT_SCOPE',
      })
      t.equal(response.headers.get('www-authenticate'), insufficient(scope))
    }
  }
  const refusals = logger.lines.filter((line) => line.message === 'keyhole: request refused')
  t.same(refusals[0]?.details, {
    keyhole: { code: 'KH_INSUFFICIENT_SCOPE', route: '/read', subject: 'mo' },
  })
  t.equal(refusals.length, 4, 'each 403 logged once')
})

t.test('a malformed scope claim → 401 KH_TOKEN_SCOPE', async (t) => {
  const { request } = await startApp(t, {}, (app) => {
    app.get('/read', requireScope('forum:read'), (_req, res) => void res.json({ ok: true }))
  })
  const response = await request('GET', '/read', bearer(await mint({ scp: [42] })))
  t.equal(response.status, 401)
  t.equal(response.json.code, 'KH_TOKEN_SCOPE')
})

t.test(
  'requireScope without the keyhole middleware in front refuses (500, says why)',
  async (t) => {
    const app = express()
    app.get('/read', requireScope('forum:read'), (_req, res) => void res.json({ ok: true }))
    app.use(keyholeErrors())
    const request = client((await serve(t, app)).base)
    const response = await request('GET', '/read', bearer(await mint({ scope: 'forum:read' })))
    t.equal(response.status, 500)
    t.equal(response.json.code, 'KH_INVALID_OPTIONS')
  },
)

t.test('bad arguments are refused when the guard is created', async (t) => {
  t.throws(() => (requireScope as (...scopes: string[]) => unknown)(), {
    code: 'KH_INVALID_OPTIONS',
  })
  t.throws(() => requireScope('forum:read', 'forum:read forum:write'), {
    code: 'KH_INVALID_OPTIONS',
    message: /argument 2 must be one scope/,
  })
})
