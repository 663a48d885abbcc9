import t from 'tap'
import { errorCatalogue, type KeyholeErrorCode } from '../../src/errors.ts'
import type { KeyholeOptions } from '../../src/options.ts'
import { createAuthenticator, type TokenSource } from '../../src/token/authenticate.ts'
import {
  audience,
  b64,
  claims,
  group,
  issuer,
  keys,
  now,
  rawToken,
  secret,
  sign,
  signRaw,
  subject,
} from '../helpers/tokens.ts'

const base: KeyholeOptions = { secret, algorithms: ['HS256'], issuer, audience }

/** The exact `WWW-Authenticate` RFC 6750 asks for, for a 401 code. */
function wwwAuthenticate(code: KeyholeErrorCode, realm = 'keyhole'): string | undefined {
  const entry = errorCatalogue[code] as {
    statusCode: number
    message: string
    bearer?: string | null
  }
  if (entry.statusCode !== 401) return undefined
  if (!entry.bearer) return `Bearer realm="${realm}"`
  return `Bearer realm="${realm}", error="${entry.bearer}", error_description="${entry.message}"`
}

const bearer = (token: string): TokenSource => ({ authorization: `Bearer ${token}` })

/** Flips the last character of a segment to one with non-zero spare bits (same decoded bytes). */
function spareBits(segment: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const last = alphabet.indexOf(segment.at(-1) as string)
  return segment.slice(0, -1) + alphabet[last ^ 1]
}

const rs = await keys('RS256')
const es = await keys('ES256')
const ps = await keys('PS256')
const rsOther = await keys('RS256', 'RS256-other')
const hsWithPem = (pem: string, alg: string) =>
  sign(claims(), new TextEncoder().encode(pem), { alg: 'HS256' }).then((token) => ({
    token,
    alg,
    pem,
  }))
const rsConfusion = await hsWithPem(rs.publicPem, 'RS256')
const esConfusion = await hsWithPem(es.publicPem, 'ES256')
const valid = await sign(claims())
const [validHeader, validPayload, validSignature] = valid.split('.') as [string, string, string]
const otherSecret = 'another-secret-another-secret-an'

interface Row {
  name: string
  source: TokenSource | (() => Promise<TokenSource>)
  code: KeyholeErrorCode
  options?: Partial<KeyholeOptions>
}

const table: Row[] = [
  { name: 'no header', source: {}, code: 'KH_TOKEN_MISSING' },
  { name: 'empty header', source: { authorization: '' }, code: 'KH_TOKEN_MISSING' },
  { name: 'Basic', source: { authorization: 'Basic dXNlcjpwYXNz' }, code: 'KH_TOKEN_MISSING' },
  { name: 'Bearer alone', source: { authorization: 'Bearer' }, code: 'KH_TOKEN_MALFORMED' },
  { name: 'Bearer and a space', source: { authorization: 'Bearer ' }, code: 'KH_TOKEN_MALFORMED' },
  {
    name: 'two tokens',
    source: { authorization: `Bearer ${valid} ${valid}` },
    code: 'KH_TOKEN_MALFORMED',
  },
  { name: 'two spaces', source: { authorization: `Bearer  ${valid}` }, code: 'KH_TOKEN_MALFORMED' },
  {
    name: 'trailing space',
    source: { authorization: `Bearer ${valid} ` },
    code: 'KH_TOKEN_MALFORMED',
  },
  { name: 'a tab', source: { authorization: `Bearer\t${valid}` }, code: 'KH_TOKEN_MALFORMED' },
  {
    name: 'header and cookie',
    source: { ...bearer(valid), cookie: valid },
    code: 'KH_TOKEN_AMBIGUOUS',
  },
  { name: 'garbage', source: bearer('garbage'), code: 'KH_TOKEN_MALFORMED' },
  {
    name: 'two segments',
    source: bearer(`${validHeader}.${validPayload}`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'four segments',
    source: bearer(`${valid}.${validSignature}`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'empty signature',
    source: bearer(`${validHeader}.${validPayload}.`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'empty payload',
    source: bearer(`${validHeader}..${validSignature}`),
    code: 'KH_TOKEN_MALFORMED',
  },
  { name: 'only dots', source: bearer('..'), code: 'KH_TOKEN_MALFORMED' },
  ...['none', 'None', 'NONE', 'nOnE'].flatMap((alg): Row[] => [
    {
      name: `alg ${alg}, empty signature`,
      source: bearer(rawToken({ alg }, claims(), '')),
      code: 'KH_TOKEN_MALFORMED',
    },
    {
      name: `alg ${alg}, a signature`,
      source: bearer(rawToken({ alg }, claims())),
      code: 'KH_TOKEN_ALGORITHM',
    },
  ]),
  { name: 'no alg', source: bearer(signRaw({ typ: 'JWT' }, claims())), code: 'KH_TOKEN_ALGORITHM' },
  {
    name: 'numeric alg',
    source: bearer(signRaw({ alg: 256 }, claims())),
    code: 'KH_TOKEN_ALGORITHM',
  },
  {
    name: 'HS512 not listed',
    source: () => sign(claims(), secret.repeat(2), { alg: 'HS512' }).then(bearer),
    code: 'KH_TOKEN_ALGORITHM',
  },
  {
    name: 'wrong key',
    source: () => sign(claims(), otherSecret).then(bearer),
    code: 'KH_TOKEN_SIGNATURE',
  },
  {
    name: 'HS256 with the RSA public key bytes, RS256 configured',
    source: bearer(rsConfusion.token),
    options: { secret: undefined, publicKey: rs.publicPem, algorithms: ['RS256'] },
    code: 'KH_TOKEN_ALGORITHM',
  },
  {
    name: 'HS256 with the EC public key bytes, ES256 configured',
    source: bearer(esConfusion.token),
    options: { secret: undefined, publicKey: es.publicPem, algorithms: ['ES256'] },
    code: 'KH_TOKEN_ALGORITHM',
  },
  {
    name: 'PS256 token, RS256 configured',
    source: () => sign(claims(), ps.privateKey, { alg: 'PS256' }).then(bearer),
    options: { secret: undefined, publicKey: rs.publicPem, algorithms: ['RS256'] },
    code: 'KH_TOKEN_ALGORITHM',
  },
  {
    name: 'RS256 token signed by another key',
    source: () => sign(claims(), rsOther.privateKey, { alg: 'RS256' }).then(bearer),
    options: { secret: undefined, publicKey: rs.publicPem, algorithms: ['RS256'] },
    code: 'KH_TOKEN_SIGNATURE',
  },
  {
    name: 'expired',
    source: () => sign(claims({ exp: now() - 10 })).then(bearer),
    code: 'KH_TOKEN_EXPIRED',
  },
  {
    name: 'exp == now',
    source: () => sign(claims({ exp: now() })).then(bearer),
    code: 'KH_TOKEN_EXPIRED',
  },
  {
    name: 'expired beyond clockTolerance',
    source: () => sign(claims({ exp: now() - 60 })).then(bearer),
    options: { clockTolerance: 30 },
    code: 'KH_TOKEN_EXPIRED',
  },
  {
    name: 'nbf in the future',
    source: () => sign(claims({ nbf: now() + 60 })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'iat too old for maxTokenAge',
    source: () => sign(claims({ iat: now() - 120 })).then(bearer),
    options: { maxTokenAge: 60 },
    code: 'KH_TOKEN_EXPIRED',
  },
  {
    name: 'no iat with maxTokenAge',
    source: () => sign(claims({ iat: undefined })).then(bearer),
    options: { maxTokenAge: 60 },
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'missing exp',
    source: () => sign(claims({ exp: undefined })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'exp a string',
    source: () => sign(claims({ exp: String(now() + 60) })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'exp negative',
    source: () => sign(claims({ exp: -1 })).then(bearer),
    code: 'KH_TOKEN_EXPIRED',
  },
  {
    name: 'wrong iss',
    source: () => sign(claims({ iss: 'https://evil.test' })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'missing iss',
    source: () => sign(claims({ iss: undefined })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'wrong aud',
    source: () => sign(claims({ aud: 'other-api' })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'aud array without ours',
    source: () => sign(claims({ aud: ['a', 'b'] })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'wrong typ',
    source: () => sign(claims(), secret, { typ: 'JWT' }).then(bearer),
    options: { typ: 'at+jwt' },
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'unknown crit',
    source: bearer(signRaw({ alg: 'HS256', crit: ['x-new'], 'x-new': 1 }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'b64 false',
    source: bearer(signRaw({ alg: 'HS256', crit: ['b64'], b64: false }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'jku header',
    source: bearer(signRaw({ alg: 'HS256', jku: 'https://evil.test/jwks' }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'jwk header',
    source: bearer(signRaw({ alg: 'HS256', jwk: { kty: 'oct', k: b64(secret) } }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'x5u header',
    source: bearer(signRaw({ alg: 'HS256', x5u: 'https://evil.test/cert' }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'x5c header',
    source: bearer(signRaw({ alg: 'HS256', x5c: ['MIIB'] }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'kid a number',
    source: bearer(signRaw({ alg: 'HS256', kid: 1 }, claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'tampered payload',
    source: bearer(
      `${validHeader}.${b64(claims({ permissions: [{ group, role: 'admin' }] }))}.${validSignature}`,
    ),
    code: 'KH_TOKEN_SIGNATURE',
  },
  { name: 'padding', source: bearer(`${valid}=`), code: 'KH_TOKEN_MALFORMED' },
  {
    name: 'padded header',
    source: bearer(`${validHeader}==.${validPayload}.${validSignature}`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'whitespace (cookie)',
    source: { cookie: `${validHeader}. ${validPayload}.${validSignature}` },
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'newline (cookie)',
    source: { cookie: `${validHeader}.${validPayload}\n.${validSignature}` },
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'newline (header)',
    source: { authorization: `Bearer ${validHeader}.\n${validPayload}.${validSignature}` },
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'standard base64 alphabet',
    source: bearer(`${validHeader}.${validPayload}.${validSignature}+/`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'non-zero spare bits',
    source: bearer(`${validHeader}.${validPayload}.${spareBits(validSignature)}`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'impossible base64url length',
    source: bearer(`${validHeader}.${validPayload}.${validSignature}AA`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'oversized',
    source: bearer(`${validHeader}.${'A'.repeat(9000)}.${validSignature}`),
    code: 'KH_TOKEN_TOO_LARGE',
  },
  {
    name: 'oversized but validly signed',
    source: () => sign(claims({ pad: 'x'.repeat(8000) })).then(bearer),
    code: 'KH_TOKEN_TOO_LARGE',
  },
  {
    name: 'non-ASCII over the byte cap',
    source: { cookie: 'é'.repeat(200) },
    options: { maxTokenBytes: 256 },
    code: 'KH_TOKEN_TOO_LARGE',
  },
  {
    name: 'non-JSON header',
    source: bearer(`${b64('not json')}.${validPayload}.${validSignature}`),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'header an array',
    source: bearer(rawToken(['HS256'], claims())),
    code: 'KH_TOKEN_MALFORMED',
  },
  { name: 'header null', source: bearer(rawToken(null, claims())), code: 'KH_TOKEN_MALFORMED' },
  {
    name: 'payload a string',
    source: bearer(signRaw({ alg: 'HS256' }, 'claims')),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'invalid UTF-8 header',
    source: bearer(
      `${b64(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))}.${validPayload}.${validSignature}`,
    ),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'invalid UTF-8 payload',
    source: bearer(
      `${validHeader}.${b64(new Uint8Array([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]))}.${validSignature}`,
    ),
    code: 'KH_TOKEN_MALFORMED',
  },
  {
    name: 'forged expired token: signature first',
    source: () => sign(claims({ exp: now() - 3600 }), otherSecret).then(bearer),
    code: 'KH_TOKEN_SIGNATURE',
  },
  {
    name: 'no subject',
    source: () => sign(claims({ sub: undefined })).then(bearer),
    code: 'KH_TOKEN_CLAIM',
  },
  {
    name: 'permissions not a list',
    source: () => sign(claims({ permissions: 'admin' })).then(bearer),
    code: 'KH_TOKEN_PERMISSIONS',
  },
]

const authenticators = new Map<string, Awaited<ReturnType<typeof createAuthenticator>>>()
async function authenticatorFor(options: Partial<KeyholeOptions> = {}) {
  const id = JSON.stringify(options)
  let authenticator = authenticators.get(id)
  if (authenticator === undefined) {
    authenticator = await createAuthenticator({ ...base, ...options } as KeyholeOptions)
    authenticators.set(id, authenticator)
  }
  return authenticator
}

t.test('bad tokens: 401 (code, status, WWW-Authenticate), never accepted', async (t) => {
  for (const row of table) {
    const authenticator = await authenticatorFor(row.options)
    const source = typeof row.source === 'function' ? await row.source() : row.source
    const error = await authenticator.authenticate(source).then(
      () => undefined,
      (e: unknown) => e as { code: string; statusCode: number; headers: Record<string, string> },
    )
    t.ok(error, `${row.name}: refused`)
    t.match(
      error,
      { code: row.code, statusCode: 401, name: 'TokenError' },
      `${row.name}: ${row.code}`,
    )
    t.same(
      error?.headers,
      { 'www-authenticate': wwwAuthenticate(row.code) },
      `${row.name}: WWW-Authenticate`,
    )
  }
})

t.test('valid tokens', async (t) => {
  const authenticator = await authenticatorFor()
  const { capability, ignored } = await authenticator.authenticate(bearer(valid))
  t.equal(capability.subject, subject)
  t.same(capability.groups('member'), [group])
  t.equal(ignored, 0)
  t.equal(authenticator.realm, 'keyhole')
  t.equal(authenticator.cookieName, undefined)

  const lower = await authenticator.authenticate({ authorization: `bearer ${valid}` })
  t.equal(lower.capability.subject, subject, 'the scheme is case-insensitive')
  const upper = await authenticator.authenticate({ authorization: `BEARER ${valid}` })
  t.equal(upper.capability.subject, subject)

  const withBasic = await authenticator.authenticate({ authorization: 'Basic eDp5', cookie: valid })
  t.equal(withBasic.capability.subject, subject, 'a cookie next to a Basic header is the token')
  const emptyCookie = await authenticator.authenticate({ ...bearer(valid), cookie: '' })
  t.equal(emptyCookie.capability.subject, subject, 'an empty cookie is no token')

  const audienceList = await sign(claims({ aud: ['other', audience] }))
  t.ok(await authenticator.authenticate(bearer(audienceList)), 'aud array containing ours')

  const unknownRole = await sign(claims({ permissions: [{ group, role: 'Admin' }] }))
  const result = await authenticator.authenticate(bearer(unknownRole))
  t.equal(result.ignored, 1, 'an unknown role is counted, not granted')
  t.equal(result.capability.isAdmin, false)

  const tolerant = await authenticatorFor({ clockTolerance: 30 })
  t.ok(
    await tolerant.authenticate(bearer(await sign(claims({ exp: now() - 10 })))),
    'expired within clockTolerance',
  )
  const noExp = await authenticatorFor({ requireExp: false })
  t.ok(
    await noExp.authenticate(bearer(await sign(claims({ exp: undefined })))),
    'requireExp: false accepts a token without exp',
  )
  const typed = await authenticatorFor({ typ: 'at+jwt' })
  t.ok(await typed.authenticate(bearer(await sign(claims(), secret, { typ: 'at+jwt' }))))
  const aged = await authenticatorFor({ maxTokenAge: 60 })
  t.ok(await aged.authenticate(bearer(await sign(claims({ iat: now() - 10 })))))
  const fromCookie = await authenticatorFor({ cookie: 'session' })
  t.equal(fromCookie.cookieName, 'session')
  t.ok(await fromCookie.authenticate({ cookie: valid }))
})

t.test('duplicate header members: last wins, as JSON.parse', async (t) => {
  const authenticator = await authenticatorFor()
  const header = b64('{"alg":"none","alg":"HS256"}')
  const payload = b64(claims())
  const { createHmac } = await import('node:crypto')
  const mac = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url')
  t.ok(await authenticator.authenticate(bearer(`${header}.${payload}.${mac}`)))
  const reversed = b64('{"alg":"HS256","alg":"none"}')
  await t.rejects(authenticator.authenticate(bearer(`${reversed}.${payload}.${mac}`)), {
    code: 'KH_TOKEN_ALGORITHM',
  })
})

t.test('the realm is named in every token error', async (t) => {
  const authenticator = await createAuthenticator({ ...base, realm: 'api "v1"' })
  const error = await authenticator.authenticate({}).catch((e: unknown) => e)
  t.match(error, { code: 'KH_TOKEN_MISSING', realm: 'api "v1"' })
  t.same((error as { headers: unknown }).headers, {
    'www-authenticate': 'Bearer realm="api \\"v1\\""',
  })
})

t.test('errors carry jose error as a non-enumerable cause, and never the token', async (t) => {
  const authenticator = await authenticatorFor()
  const forged = await sign(claims(), otherSecret)
  const error = (await authenticator.authenticate(bearer(forged)).catch((e: unknown) => e)) as Error
  t.equal((error.cause as Error).name, 'JWSSignatureVerificationFailed')
  t.notOk(Object.keys(error).includes('cause'))
  t.notMatch(JSON.stringify(error), forged)
  t.notMatch(error.message, forged)
  t.notMatch(String(error.stack), forged)
})

t.test('a valid token still works after 200 invalid ones', async (t) => {
  const authenticator = await authenticatorFor()
  const forged = await sign(claims(), otherSecret)
  for (let i = 0; i < 200; i++) {
    const bad = i % 2 === 0 ? forged : `${validHeader}.${b64({ i })}.${validSignature}`
    await t.rejects(authenticator.authenticate(bearer(bad)), { code: 'KH_TOKEN_SIGNATURE' })
  }
  const fresh = await sign(claims())
  t.equal((await authenticator.authenticate(bearer(fresh))).capability.subject, subject)
})
