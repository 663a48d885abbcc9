/**
 * The JWT bad-input table at the HTTP level: every row answers 401 with its exact code and
 * `WWW-Authenticate` header, a generic body without stack, token or claims, and one info log line
 * that never carries the token. A valid request still works after all of them.
 */
import t from 'tap'
import { errorCatalogue, type KeyholeErrorCode } from '../../src/errors.ts'
import { buildApp, challenge, mint, SECRET } from './helpers/keyhole-app.ts'

const expectedHeader = (code: KeyholeErrorCode): string => {
  const entry = errorCatalogue[code] as { message: string; bearer?: string | null }
  return entry.bearer ? challenge(entry.bearer, entry.message) : challenge()
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

t.test('bad tokens: status, code and WWW-Authenticate, row by row', async (t) => {
  const { app, logs, rawLog } = await buildApp(t, { cookie: 'session' })
  const valid = await mint({ sub: 'alice' })
  const [h, p, s] = valid.split('.') as [string, string, string]
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`
  const noneSpellings = ['none', 'None', 'NONE', 'nOnE'].map((alg) => `${b64({ alg })}.${p}.${s}`)
  const rows: [string, Record<string, string>, KeyholeErrorCode][] = [
    ['no header', {}, 'KH_TOKEN_MISSING'],
    ['Basic', { authorization: 'Basic YWxpY2U6c2VjcmV0' }, 'KH_TOKEN_MISSING'],
    ['Bearer alone', { authorization: 'Bearer' }, 'KH_TOKEN_MALFORMED'],
    ['Bearer and a space', { authorization: 'Bearer ' }, 'KH_TOKEN_MALFORMED'],
    ['two tokens', { authorization: `Bearer ${valid} ${valid}` }, 'KH_TOKEN_MALFORMED'],
    ['two spaces', { authorization: `Bearer  ${valid}` }, 'KH_TOKEN_MALFORMED'],
    ['trailing space', { authorization: `Bearer ${valid} ` }, 'KH_TOKEN_MALFORMED'],
    ['garbage', { authorization: 'Bearer not-a-token' }, 'KH_TOKEN_MALFORMED'],
    ['two segments', { authorization: `Bearer ${h}.${p}` }, 'KH_TOKEN_MALFORMED'],
    ['four segments', { authorization: `Bearer ${valid}.${s}` }, 'KH_TOKEN_MALFORMED'],
    ['padding', { authorization: `Bearer ${h}.${p}=.${s}` }, 'KH_TOKEN_MALFORMED'],
    ['an empty signature', { authorization: `Bearer ${h}.${p}.` }, 'KH_TOKEN_MALFORMED'],
    ['alg none, empty signature', { authorization: `Bearer ${none}` }, 'KH_TOKEN_MALFORMED'],
    ...noneSpellings.map((token, i): [string, Record<string, string>, KeyholeErrorCode] => [
      `alg none spelling ${i}`,
      { authorization: `Bearer ${token}` },
      'KH_TOKEN_ALGORITHM',
    ]),
    [
      'wrong key',
      { authorization: `Bearer ${await mint({}, { secret: `${SECRET}-other` })}` },
      'KH_TOKEN_SIGNATURE',
    ],
    [
      'tampered payload',
      { authorization: `Bearer ${h}.${b64({ sub: 'admin' })}.${s}` },
      'KH_TOKEN_SIGNATURE',
    ],
    [
      'expired',
      { authorization: `Bearer ${await mint({ exp: Math.floor(Date.now() / 1000) - 3600 })}` },
      'KH_TOKEN_EXPIRED',
    ],
    ['no exp', { authorization: `Bearer ${await mint({ exp: undefined })}` }, 'KH_TOKEN_CLAIM'],
    [
      'wrong iss',
      { authorization: `Bearer ${await mint({ iss: 'https://evil.test' })}` },
      'KH_TOKEN_CLAIM',
    ],
    [
      'wrong aud',
      { authorization: `Bearer ${await mint({ aud: 'another-api' })}` },
      'KH_TOKEN_CLAIM',
    ],
    [
      'malformed permissions',
      {
        authorization: `Bearer ${await mint({ permissions: [{ group: '1,3', role: 'member' }] })}`,
      },
      'KH_TOKEN_PERMISSIONS',
    ],
    ['oversized', { authorization: `Bearer ${'a'.repeat(9000)}.${p}.${s}` }, 'KH_TOKEN_TOO_LARGE'],
    [
      'header and cookie',
      { authorization: `Bearer ${valid}`, cookie: `session=${valid}` },
      'KH_TOKEN_AMBIGUOUS',
    ],
    ['cookie twice', { cookie: `session=${valid}; session=${valid}` }, 'KH_TOKEN_AMBIGUOUS'],
  ]
  for (const [name, headers, code] of rows) {
    const response = await app.inject({ method: 'GET', url: '/me', headers })
    const entry = errorCatalogue[code]
    t.equal(response.statusCode, entry.statusCode, `${name}: status`)
    t.same(
      response.json(),
      { statusCode: 401, error: 'Unauthorized', message: entry.message, code },
      `${name}: body`,
    )
    t.equal(response.headers['www-authenticate'], expectedHeader(code), `${name}: header`)
  }

  const refusals = logs().filter((line) => line.msg === 'keyhole: request refused')
  t.equal(refusals.length, rows.length, 'one info line per refusal')
  t.ok(refusals.every((line) => line.level === 30))
  t.match(refusals[0], { keyhole: { code: 'KH_TOKEN_MISSING', route: '/me', subject: null } })
  t.notOk(rawLog().includes(s), 'no token signature in the log')
  t.notOk(rawLog().includes(p), 'no token payload in the log')

  const ok = await app.inject({
    method: 'GET',
    url: '/me',
    headers: { authorization: `Bearer ${valid}` },
  })
  t.equal(ok.statusCode, 200, 'a valid token still works after all of them')
  t.same(ok.json(), { subject: 'alice', isAdmin: false })
})

t.test('two Authorization headers are ambiguous (Node would keep only the first)', async (t) => {
  const { app } = await buildApp(t)
  const valid = await mint()
  const response = await app.inject({
    method: 'GET',
    url: '/me',
    headers: { authorization: [`Bearer ${valid}`, 'Bearer x.y.z'] as unknown as string },
  })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'KH_TOKEN_AMBIGUOUS')
  t.equal(response.headers['www-authenticate'], expectedHeader('KH_TOKEN_AMBIGUOUS'))
})

t.test('the scheme is case-insensitive; the cookie alone works', async (t) => {
  const { app } = await buildApp(t, { cookie: 'session' })
  const token = await mint({ sub: 'bob' })
  for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
    const response = await app.inject({
      method: 'GET',
      url: '/me',
      headers: { authorization: `${scheme} ${token}` },
    })
    t.equal(response.statusCode, 200, scheme)
  }
  const cookie = await app.inject({
    method: 'GET',
    url: '/me',
    headers: { cookie: `theme=dark; session=${token}` },
  })
  t.same(cookie.json(), { subject: 'bob', isAdmin: false })
  const other = await app.inject({
    method: 'GET',
    url: '/me',
    headers: { cookie: 'theme=dark; x' },
  })
  t.equal(other.json().code, 'KH_TOKEN_MISSING', 'no session cookie: missing')
})

t.test('error bodies carry no stack, token or claim value', async (t) => {
  const { app, rawLog } = await buildApp(t)
  const secretSubject = 'subject-7f3e9a'
  const expired = await mint({ sub: secretSubject, exp: Math.floor(Date.now() / 1000) - 60 })
  const response = await app.inject({
    method: 'GET',
    url: '/me',
    headers: { authorization: `Bearer ${expired}` },
  })
  t.equal(response.statusCode, 401)
  t.same(Object.keys(response.json()).sort(), ['code', 'error', 'message', 'statusCode'])
  t.notMatch(response.body, /stack|at .*\.ts|eyJ/)
  t.notOk(response.body.includes(secretSubject))
  t.notOk(rawLog().includes(expired.split('.')[2] as string))
})

t.test('unknown roles in the claim are ignored and counted at debug', async (t) => {
  const { app, logs } = await buildApp(t)
  const token = await mint({
    permissions: [
      { group: '00000000-0000-4000-8000-000000000001', role: 'Admin' },
      { group: '00000000-0000-4000-8000-000000000001', role: 'member' },
    ],
  })
  const response = await app.inject({
    method: 'GET',
    url: '/me',
    headers: { authorization: `Bearer ${token}` },
  })
  t.same(response.json(), { subject: 'alice', isAdmin: false }, '"Admin" is not "admin"')
  t.match(
    logs().find((line) => line.msg === 'keyhole: permissions with unknown roles'),
    { level: 20, keyhole: { ignored: 1 } },
  )
})

t.test('logDenials: false keeps refusals out of the log', async (t) => {
  const { app, logs } = await buildApp(t, { logDenials: false })
  t.equal((await app.inject({ method: 'GET', url: '/me' })).statusCode, 401)
  t.equal(
    (
      await app.inject({
        method: 'GET',
        url: '/mod',
        headers: { authorization: `Bearer ${await mint()}` },
      })
    ).statusCode,
    403,
  )
  t.notOk(logs().some((line) => line.msg === 'keyhole: request refused'))
})

t.test(
  'after many invalid requests a valid one still works; a forged one stays refused',
  async (t) => {
    const { app } = await buildApp(t)
    const valid = await mint()
    const forged = await mint({}, { secret: `${SECRET}-other` })
    for (let i = 0; i < 50; i++) {
      const token = i % 2 === 0 ? forged : `${valid}x`
      const headers = { authorization: `Bearer ${token}` }
      t.equal((await app.inject({ method: 'GET', url: '/me', headers })).statusCode, 401)
    }
    const me = (token: string) =>
      app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })
    t.equal((await me(valid)).statusCode, 200)
    t.equal((await me(forged)).statusCode, 401, 'still refused once the valid token is cached')
  },
)

t.test('the realm option names the realm of WWW-Authenticate', async (t) => {
  const { app } = await buildApp(t, { realm: 'forum' })
  const response = await app.inject({ method: 'GET', url: '/me' })
  t.equal(response.headers['www-authenticate'], 'Bearer realm="forum"')
})
