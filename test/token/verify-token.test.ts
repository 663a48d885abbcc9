import { errors } from 'jose'
import t from 'tap'
import { TokenError } from '../../src/errors.ts'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { toTokenError } from '../../src/token/verify-token.ts'
import { audience, claims, issuer, keys, sign } from '../helpers/tokens.ts'

t.test('every jose error maps to one of ours, jose’s kept as cause', async (t) => {
  const table: [Error, string, number][] = [
    [new errors.JWSSignatureVerificationFailed(), 'KH_TOKEN_SIGNATURE', 401],
    [new errors.JWTExpired('expired', {}), 'KH_TOKEN_EXPIRED', 401],
    [new errors.JWTClaimValidationFailed('claim', {}), 'KH_TOKEN_CLAIM', 401],
    [new errors.JOSEAlgNotAllowed('alg'), 'KH_TOKEN_ALGORITHM', 401],
    [new errors.JWKSNoMatchingKey(), 'KH_TOKEN_KEY_UNKNOWN', 401],
    [new errors.JWKSMultipleMatchingKeys(), 'KH_TOKEN_KEY_UNKNOWN', 401],
    [new errors.JWKSTimeout(), 'KH_KEYS_UNAVAILABLE', 503],
    [new errors.JWSInvalid('invalid'), 'KH_TOKEN_MALFORMED', 401],
    [new errors.JWTInvalid('invalid'), 'KH_TOKEN_MALFORMED', 401],
    [new errors.JOSENotSupported('crit'), 'KH_TOKEN_MALFORMED', 401],
    [new TypeError('key type'), 'KH_TOKEN_MALFORMED', 401],
  ]
  for (const [error, code, statusCode] of table) {
    const mapped = toTokenError(error)
    t.match(mapped, { code, statusCode }, error.name)
    t.equal(mapped.cause, error)
  }
  const ours = new TokenError('KH_TOKEN_REVOKED')
  t.equal(toTokenError(ours), ours, 'a TokenError passes through')
})

t.test('getKey: the user lookup', async (t) => {
  const es = await keys('ES256')
  const token = await sign(claims(), es.privateKey, { alg: 'ES256', kid: 'k' })
  const bearer = { authorization: `Bearer ${token}` }
  const seen: unknown[] = []
  const cases: [string, () => unknown, string | undefined][] = [
    ['a key', () => es.publicKey, undefined],
    ['a promise of a key', async () => es.publicKey, undefined],
    ['undefined', () => undefined, 'KH_TOKEN_KEY_UNKNOWN'],
    ['null', () => null, 'KH_TOKEN_KEY_UNKNOWN'],
    [
      'a throw',
      () => {
        throw new Error('store down')
      },
      'KH_KEYS_UNAVAILABLE',
    ],
    [
      'a TokenError',
      () => {
        throw new TokenError('KH_TOKEN_KEY_UNKNOWN')
      },
      'KH_TOKEN_KEY_UNKNOWN',
    ],
    ['a key of the wrong type', () => new Uint8Array(32), 'KH_TOKEN_MALFORMED'],
  ]
  for (const [name, lookup, code] of cases) {
    const authenticator = await createAuthenticator({
      getKey: ((header: { kid?: string }, raw: string) => {
        seen.push([header.kid, raw === token])
        return lookup()
      }) as never,
      algorithms: ['ES256'],
      issuer,
      audience,
      cache: false,
    })
    if (code === undefined) {
      t.ok(await authenticator.authenticate(bearer), name)
    } else {
      await t.rejects(authenticator.authenticate(bearer), { code }, name)
    }
  }
  t.same(seen[0], ['k', true], 'getKey gets the protected header and the token')
})

t.test('the reason names the check that failed, never the value', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const authenticator = await createAuthenticator({
    secret: 'test-secret-test-secret-test-sec',
    algorithms: ['HS256'],
    issuer: ['https://a.example/', 'https://b.example'],
    audience,
    maxTokenAge: 600,
    requiredClaims: ['jti'],
    cache: false,
  })
  const rows: [string, Record<string, unknown>, string, string][] = [
    [
      'iss, a trailing slash',
      { iss: 'https://a.example' },
      'KH_TOKEN_CLAIM',
      'iss: not the configured issuer; they differ only by a trailing "/"',
    ],
    [
      'iss, another',
      { iss: 'https://c.example' },
      'KH_TOKEN_CLAIM',
      'iss: not the configured issuer',
    ],
    ['jti missing', { jti: undefined }, 'KH_TOKEN_CLAIM', 'jti: missing'],
    ['nbf ahead', { nbf: now + 600 }, 'KH_TOKEN_CLAIM', 'nbf: not valid yet'],
    ['nbf a string', { nbf: 'soon' }, 'KH_TOKEN_CLAIM', 'nbf: not a number'],
    ['iat ahead', { iat: now + 600 }, 'KH_TOKEN_CLAIM', 'iat: in the future (maxTokenAge)'],
    ['iat too old', { iat: now - 700 }, 'KH_TOKEN_EXPIRED', 'iat: older than maxTokenAge'],
    ['exp past', { exp: now - 1 }, 'KH_TOKEN_EXPIRED', 'exp: in the past'],
    ['nbf negative', { nbf: -1 }, 'KH_TOKEN_CLAIM', 'nbf: negative'],
  ]
  for (const [name, extra, code, reason] of rows) {
    const token = await sign(claims({ iss: 'https://b.example', jti: 'j', ...extra }))
    const error = await authenticator
      .authenticate({ authorization: `Bearer ${token}` })
      .catch((e) => e)
    t.match(error, { code }, name)
    t.equal(error.reason, reason, `${name}: reason`)
    t.notOk(Object.keys(error).includes('reason'), `${name}: not enumerable`)
    t.notOk(JSON.stringify(error).includes('reason'), `${name}: not in the body`)
  }
  const forged = await sign(
    claims({ iss: 'https://b.example', jti: 'j' }),
    'another-secret-another-secret-an',
  )
  const error = await authenticator
    .authenticate({ authorization: `Bearer ${forged}` })
    .catch((e) => e)
  t.equal(error.reason, 'signature: does not verify with the key')
})
