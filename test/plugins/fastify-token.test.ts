/**
 * The plugin's HTTP contract for tokens: every bad `Authorization` answers 401 with the exact code
 * and the exact RFC 6750 `WWW-Authenticate`; a valid token sets `request.capability`.
 */
import t, { type Test } from 'tap'
import { TokenError, type KeyholeErrorCode } from '../../src/errors.ts'
import { audience, bearer, buildApp, groupA, mint, secret } from './helpers/app.ts'

type TokenCode = ConstructorParameters<typeof TokenError>[0]

const realm = 'keyhole'
const wwwAuthenticate = (code: TokenCode) =>
  new TokenError(code, { realm }).headers['www-authenticate']

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

async function withCapability(t: Test) {
  return buildApp(t, { cookie: 'session' }, (app) => {
    app.get('/me', async (request) => ({
      subject: request.capability.subject,
      member: request.capability.groups('member'),
    }))
  })
}

t.test('a bad or missing token answers 401 with the code and WWW-Authenticate', async (t) => {
  const { app } = await withCapability(t)
  const valid = await mint()
  const [head, payload] = valid.split('.') as [string, string, string]
  const cases: [string, Record<string, string | string[]>, TokenCode][] = [
    ['no Authorization header', {}, 'KH_TOKEN_MISSING'],
    ['Basic credentials', { authorization: 'Basic dXNlcjpwYXNz' }, 'KH_TOKEN_MISSING'],
    ['Bearer alone', { authorization: 'Bearer' }, 'KH_TOKEN_MALFORMED'],
    ['Bearer and a space', { authorization: 'Bearer ' }, 'KH_TOKEN_MALFORMED'],
    ['two tokens', { authorization: `Bearer ${valid} ${valid}` }, 'KH_TOKEN_MALFORMED'],
    ['two spaces', { authorization: `Bearer  ${valid}` }, 'KH_TOKEN_MALFORMED'],
    ['a trailing space', { authorization: `Bearer ${valid} ` }, 'KH_TOKEN_MALFORMED'],
    ['garbage', bearer('not-a-token'), 'KH_TOKEN_MALFORMED'],
    ['two segments', bearer(`${head}.${payload}`), 'KH_TOKEN_MALFORMED'],
    ['four segments', bearer(`${valid}.abc`), 'KH_TOKEN_MALFORMED'],
    ['an empty signature', bearer(`${head}.${payload}.`), 'KH_TOKEN_MALFORMED'],
    ['padding', bearer(`${valid}=`), 'KH_TOKEN_MALFORMED'],
    ['alg none', bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`), 'KH_TOKEN_MALFORMED'],
    [
      'alg none with a signature',
      bearer(`${b64({ alg: 'none' })}.${payload}.${valid.split('.')[2]}`),
      'KH_TOKEN_ALGORITHM',
    ],
    ['alg NoNe', bearer(`${b64({ alg: 'NoNe' })}.${payload}.c2ln`), 'KH_TOKEN_ALGORITHM'],
    [
      'another key',
      bearer(await mint({}, { key: 'another-secret-of-at-least-32-bytes-0123456' })),
      'KH_TOKEN_SIGNATURE',
    ],
    [
      'a tampered payload',
      bearer(`${head}.${b64({ sub: 'mallory' })}.${valid.split('.')[2]}`),
      'KH_TOKEN_SIGNATURE',
    ],
    ['expired', bearer(await mint({}, { exp: -120 })), 'KH_TOKEN_EXPIRED'],
    ['no exp', bearer(await mint({}, { exp: null })), 'KH_TOKEN_CLAIM'],
    ['another issuer', bearer(await mint({}, { iss: 'https://evil.test' })), 'KH_TOKEN_CLAIM'],
    ['another audience', bearer(await mint({}, { aud: 'another-api' })), 'KH_TOKEN_CLAIM'],
    ['oversized', bearer(await mint({ pad: 'x'.repeat(9000) })), 'KH_TOKEN_TOO_LARGE'],
    [
      'malformed permissions',
      bearer(await mint({ permissions: [{ group: '1,3', role: 'member' }] })),
      'KH_TOKEN_PERMISSIONS',
    ],
    [
      'a header and a cookie',
      { ...bearer(valid), cookie: `session=${valid}` },
      'KH_TOKEN_AMBIGUOUS',
    ],
    [
      'two Authorization headers',
      { authorization: [`Bearer ${valid}`, `Bearer ${valid}`] },
      'KH_TOKEN_AMBIGUOUS',
    ],
  ]
  for (const [name, headers, code] of cases) {
    const response = await app.inject({ method: 'GET', url: '/me', headers })
    t.equal(response.statusCode, 401, `${name}: 401`)
    t.equal(response.json().code, code, `${name}: ${code}`)
    t.equal(response.headers['www-authenticate'], wwwAuthenticate(code), `${name}: header`)
  }
})

t.test(
  'a valid token, in the header (any scheme case) or the cookie, sets request.capability',
  async (t) => {
    const { app } = await withCapability(t)
    const token = await mint()
    for (const headers of [
      bearer(token),
      { authorization: `bearer ${token}` },
      { authorization: `BEARER ${token}` },
      { cookie: `other=1; session=${token}` },
    ]) {
      const response = await app.inject({ method: 'GET', url: '/me', headers })
      t.equal(response.statusCode, 200)
      t.same(response.json(), { subject: 'alice', member: [groupA] })
    }
  },
)

t.test('error bodies carry the code and a generic message: no stack, token or claim', async (t) => {
  const { app } = await withCapability(t)
  const token = await mint({ sub: 'secret-subject' }, { exp: -120 })
  const response = await app.inject({ method: 'GET', url: '/me', headers: bearer(token) })
  const body = response.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
  t.same(body, {
    statusCode: 401,
    error: 'Unauthorized',
    message: 'The access token expired',
    code: 'KH_TOKEN_EXPIRED' satisfies KeyholeErrorCode,
  })
  t.notMatch(response.body, token)
  t.notMatch(response.body, 'secret-subject')
  t.notMatch(response.body, secret)
})

t.test('after many invalid requests a valid one still works', async (t) => {
  const { app } = await withCapability(t)
  const valid = await mint()
  const forged = await mint({}, { key: 'another-secret-of-at-least-32-bytes-0123456' })
  for (let i = 0; i < 50; i++) {
    const headers = i % 2 === 0 ? bearer(forged) : bearer(`${valid}x`)
    t.equal((await app.inject({ method: 'GET', url: '/me', headers })).statusCode, 401)
  }
  const response = await app.inject({ method: 'GET', url: '/me', headers: bearer(valid) })
  t.equal(response.statusCode, 200)
  // And the forged token is still refused after the valid one was cached.
  t.equal(
    (await app.inject({ method: 'GET', url: '/me', headers: bearer(forged) })).statusCode,
    401,
  )
})

t.test('the realm option names the realm of WWW-Authenticate', async (t) => {
  const { app } = await buildApp(t, { realm: 'forum' }, (app) => {
    app.get('/me', async () => 'ok')
  })
  const response = await app.inject({ method: 'GET', url: '/me' })
  t.equal(response.headers['www-authenticate'], 'Bearer realm="forum"')
  t.equal(audience, 'keyhole-test')
})
