/**
 * Time claims: jose checks `exp`, `nbf` and `iat` are numbers; keyhole also refuses negative ones
 * (a negative `nbf` or `iat` passes jose's comparisons). Fractional NumericDates are valid (RFC
 * 7519 §2).
 */
import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { audience, claims, issuer, now, secret, sign } from '../helpers/tokens.ts'

const authenticator = await createAuthenticator({
  secret,
  algorithms: ['HS256'],
  issuer,
  audience,
  cache: false,
  // `iat: 0` is a valid NumericDate, far beyond the lifetime bound (test/token/lifetime.test.ts).
  maxTokenLifetime: false,
})
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

t.test('negative or non-numeric times are KH_TOKEN_CLAIM', async (t) => {
  const rows: [string, Record<string, unknown>, string][] = [
    ['nbf negative', { nbf: -1 }, 'KH_TOKEN_CLAIM'],
    ['iat negative', { iat: -1 }, 'KH_TOKEN_CLAIM'],
    ['nbf a string', { nbf: '0' }, 'KH_TOKEN_CLAIM'],
    ['iat null', { iat: null }, 'KH_TOKEN_CLAIM'],
    ['exp negative', { exp: -1 }, 'KH_TOKEN_EXPIRED'],
    ['exp an array', { exp: [now() + 60] }, 'KH_TOKEN_CLAIM'],
  ]
  for (const [name, extra, code] of rows) {
    const error = await authenticator
      .authenticate(bearer(await sign(claims(extra))))
      .catch((e) => e)
    t.match(error, { code, statusCode: 401 }, name)
    t.match(error.headers, { 'www-authenticate': /error="invalid_token"/ }, name)
  }
})

t.test('zero and fractional times are valid NumericDates', async (t) => {
  for (const extra of [{ nbf: 0 }, { iat: 0 }, { exp: now() + 60.5, nbf: now() - 0.5 }]) {
    const { capability } = await authenticator.authenticate(bearer(await sign(claims(extra))))
    t.equal(capability.subject, 'user-1', JSON.stringify(Object.keys(extra)))
  }
})
