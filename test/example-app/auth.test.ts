/**
 * The 401 cases: no token, or a bad, expired, tampered or wrongly-addressed one. Each answers 401
 * with `WWW-Authenticate: Bearer …`, on every protected route, and nothing is written.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import { signToken } from '../../example-app/tokens.ts'
import { startForum } from './helpers/forum.ts'

const forum = await startForum(t)
const { groupA } = forum
const thread = await forum.seedThread(groupA, 'alice')
const post = await forum.seedPost(thread, 'alice')
const permissions = [{ group: groupA, role: 'admin' as const }]
const now = Math.floor(Date.now() / 1000)

function sign(claims: Record<string, unknown>, secret = forum.settings.jwtSecret) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(secret))
}

const valid = await signToken(forum.settings, { sub: 'alice', permissions })
const [header, payload, signature] = valid.split('.') as [string, string, string]
const forged = JSON.parse(Buffer.from(payload, 'base64url').toString())
forged.sub = 'mallory'
const base = {
  sub: 'alice',
  iss: forum.settings.jwtIssuer,
  aud: forum.settings.jwtAudience,
  iat: now,
  exp: now + 600,
  permissions,
}

const cases: [string, string | undefined][] = [
  ['no Authorization header', undefined],
  ['an empty Authorization header', ''],
  ['Basic credentials', `Basic ${Buffer.from('alice:secret').toString('base64')}`],
  ['Bearer without a token', 'Bearer'],
  ['not a JWT', 'Bearer not-a-token'],
  [
    'a tampered payload',
    `Bearer ${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${signature}`,
  ],
  ['a truncated signature', `Bearer ${valid.slice(0, -4)}`],
  ['alg none', `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`],
  ['signed with another secret', `Bearer ${await sign(base, randomBytes(32).toString('hex'))}`],
  ['expired', `Bearer ${await sign({ ...base, iat: now - 7200, exp: now - 3600 })}`],
  ['without exp', `Bearer ${await sign({ ...base, exp: undefined })}`],
  ['another issuer', `Bearer ${await sign({ ...base, iss: 'https://elsewhere.example' })}`],
  ['another audience', `Bearer ${await sign({ ...base, aud: 'another-api' })}`],
  ['without sub', `Bearer ${await sign({ ...base, sub: undefined })}`],
  ['malformed permissions', `Bearer ${await sign({ ...base, permissions: 'admin' })}`],
  [
    'a group ID that is not a UUID',
    `Bearer ${await sign({ ...base, permissions: [{ group: '1', role: 'admin' }] })}`,
  ],
]

const routes: [string, string, object | undefined][] = [
  ['POST', '/groups', { name: 'x' }],
  ['GET', `/groups/${groupA}/threads`, undefined],
  ['POST', `/groups/${groupA}/threads`, { title: 'x' }],
  ['GET', `/threads/${thread}`, undefined],
  ['PATCH', `/threads/${thread}`, { title: 'x' }],
  ['DELETE', `/threads/${thread}`, undefined],
  ['GET', `/threads/${thread}/posts`, undefined],
  ['POST', `/threads/${thread}/posts`, { content: 'x' }],
  ['DELETE', `/posts/${post}`, undefined],
]

async function counts() {
  return [
    await forum.count('groups'),
    await forum.count('discussion_threads'),
    await forum.count('posts'),
  ]
}

t.test('every protected route answers 401 with WWW-Authenticate: Bearer', async (t) => {
  const before = await counts()
  for (const [name, authorization] of cases) {
    for (const [method, url, body] of routes) {
      const response = await forum.app.inject({
        method: method as 'GET',
        url,
        headers: authorization === undefined ? {} : { authorization },
        ...(body === undefined ? {} : { payload: body }),
      })
      const label = `${name}: ${method} ${url}`
      t.equal(response.statusCode, 401, label)
      t.match(response.headers['www-authenticate'], /^Bearer realm="[^"]*"/, `${label}: header`)
      const error = response.json()
      t.same(Object.keys(error).sort(), ['code', 'error', 'message', 'statusCode'])
      t.match(error, { statusCode: 401, error: 'Unauthorized', code: /^KH_TOKEN_/ }, label)
      t.notOk(response.body.includes(valid), `${label}: the token is not echoed`)
    }
  }
  t.same(await counts(), before, 'nothing written')
})

t.test(
  'no token at all: a bare challenge, without an error attribute (RFC 6750 §3.1)',
  async (t) => {
    const response = await forum.app.inject({ method: 'GET', url: `/threads/${thread}` })
    t.equal(response.statusCode, 401)
    t.equal(response.json().code, 'KH_TOKEN_MISSING')
    t.notMatch(response.headers['www-authenticate'], /error=/)
  },
)

t.test('the valid token works, after all those invalid ones', async (t) => {
  const response = await forum.app.inject({
    method: 'GET',
    url: `/threads/${thread}`,
    headers: { authorization: `Bearer ${valid}` },
  })
  t.equal(response.statusCode, 200)
})
