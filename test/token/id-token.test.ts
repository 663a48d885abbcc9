/**
 * ID tokens are not access tokens. Whatever `typ` is configured, a token carrying a claim only an
 * ID token carries (`at_hash`, `c_hash`, OpenID Connect Core §3.1.3.6 and §3.3.2.11), Cognito's
 * `token_use: 'id'` or Keycloak's `typ: 'ID'` claim is refused; `nonce` and `azp` are not ID-token
 * markers (Keycloak before 25 put `nonce` in access tokens; Auth0, Keycloak and Entra ID put
 * `azp`), so they pass. See docs/security-model.md for the providers' documentation this rests on.
 */
import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { audience, claims, issuer, secret, sign } from '../helpers/tokens.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const authenticator = await createAuthenticator({
  secret,
  algorithms: ['HS256'],
  issuer,
  audience,
})

t.test('a recognisable ID token is refused in every mode', async (t) => {
  const rows: [string, Record<string, unknown>, RegExp][] = [
    ['at_hash', { at_hash: 'x4ksQ3M4bL2Qk0fBq0gSdw' }, /^at_hash: an ID token/],
    ['c_hash', { c_hash: 'LDktKdoQak3Pk0cnXxCltA' }, /^c_hash: an ID token/],
    ["Cognito's token_use: id", { token_use: 'id' }, /^token_use: an ID token/],
    ["Keycloak's typ claim ID", { typ: 'ID' }, /^typ \(claim\): an ID token/],
  ]
  for (const [name, extra, reason] of rows) {
    for (const typ of ['JWT', 'at+jwt']) {
      const token = await sign(claims(extra), secret, { typ })
      const error = await authenticator.authenticate(bearer(token)).catch((e) => e)
      t.match(error, { code: 'KH_TOKEN_CLAIM', statusCode: 401 }, `${name}, typ ${typ}`)
      t.match(error.reason, reason, `${name}: reason`)
    }
  }
})

t.test('claims that access tokens of common providers carry pass', async (t) => {
  for (const extra of [
    { nonce: 'n-0S6_WzA2Mj' },
    { azp: 'spa-client' },
    { token_use: 'access', client_id: 'spa-client' },
    { typ: 'Bearer' },
    { sid: 'session-1', auth_time: 1 },
  ]) {
    const { capability } = await authenticator.authenticate(bearer(await sign(claims(extra))))
    t.equal(capability.subject, 'user-1', Object.keys(extra).join(', '))
  }
})
