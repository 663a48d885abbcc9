/**
 * The lifetime bound (`maxTokenLifetime`, a day by default): a token whose `exp - iat` is longer
 * is refused as KH_TOKEN_CLAIM, whatever its signature, so a token minted with a leaked key cannot
 * outlive the key's removal by years. A token without `iat` counts from now; an `iat` set in the
 * future cannot stretch the bound by more than five minutes. `false` turns it off.
 */
import t from 'tap'
import type { KeyholeOptions } from '../../src/options.ts'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { audience, claims, issuer, now, secret, sign } from '../helpers/tokens.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const day = 86_400
const base = { secret, algorithms: ['HS256'], issuer, audience, cache: false } as const
const byDefault = await createAuthenticator(base)

async function check(authenticator: typeof byDefault, extra: Record<string, unknown>) {
  return authenticator.authenticate(bearer(await sign(claims(extra)))).catch((e) => e)
}

t.test('by default a token may claim at most a day', async (t) => {
  const accepted: [string, Record<string, unknown>][] = [
    ['an hour', {}],
    ['exactly a day', { iat: now(), exp: now() + day }],
    ['a day, issued an hour ago', { iat: now() - 3600, exp: now() - 3600 + day }],
    ['no iat, expiring within a day', { iat: undefined, exp: now() + day - 60 }],
    [
      'iat a minute ahead (issuer clock skew), a day long',
      { iat: now() + 60, exp: now() + 60 + day },
    ],
  ]
  for (const [name, extra] of accepted) {
    const result = await check(byDefault, extra)
    t.equal(result.capability?.subject, 'user-1', name)
  }
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['ten years', { exp: now() + 10 * 365 * day }, /^exp - iat: longer than maxTokenLifetime$/],
    ['a day and a second', { iat: now(), exp: now() + day + 1 }, /^exp - iat: longer/],
    [
      'no iat, ten years',
      { iat: undefined, exp: now() + 10 * 365 * day },
      /^exp: further away than maxTokenLifetime \(the token has no iat\)$/,
    ],
    [
      'an iat set in the future to look short',
      { iat: now() + 9 * 365 * day, exp: now() + 9 * 365 * day + 3600 },
      /^exp: further away than maxTokenLifetime \(iat is in the future\)$/,
    ],
  ]
  for (const [name, extra, reason] of refused) {
    const error = await check(byDefault, extra)
    t.match(error, { code: 'KH_TOKEN_CLAIM', statusCode: 401 }, name)
    t.match(error.reason, reason, `${name}: the reason names the bound`)
    t.match(error.headers, { 'www-authenticate': /error="invalid_token"/ }, name)
    t.notMatch(error.message, /maxTokenLifetime/, `${name}: the client gets the generic message`)
  }
})

t.test('maxTokenLifetime sets the bound; false turns it off', async (t) => {
  const short = await createAuthenticator({ ...base, maxTokenLifetime: 600 })
  t.equal((await check(short, { exp: now() + 600 })).capability?.subject, 'user-1')
  t.match(await check(short, { exp: now() + 601 }), { code: 'KH_TOKEN_CLAIM' })
  const off = await createAuthenticator({ ...base, maxTokenLifetime: false })
  t.equal((await check(off, { exp: now() + 10 * 365 * day })).capability?.subject, 'user-1')
  const forever = await createAuthenticator({ ...base, requireExp: false })
  t.equal(
    (await check(forever, { exp: undefined })).capability?.subject,
    'user-1',
    'requireExp: false: a token without exp has no lifetime to bound',
  )
})

t.test('a lifetime that is no positive number of seconds is refused at registration', async (t) => {
  for (const maxTokenLifetime of [0, -1, true, '86400', Number.NaN, 40_000_000]) {
    await t.rejects(
      createAuthenticator({ ...base, maxTokenLifetime } as unknown as KeyholeOptions),
      { code: 'KH_INVALID_OPTIONS', message: /^maxTokenLifetime:/ },
      String(maxTokenLifetime),
    )
  }
})

t.test('the cache holds no token past the bound', async (t) => {
  const cached = await createAuthenticator({ ...base, cache: { max: 10 } })
  const long = await sign(claims({ exp: now() + 2 * day }))
  for (let i = 0; i < 2; i++) {
    await t.rejects(cached.authenticate(bearer(long)), { code: 'KH_TOKEN_CLAIM' }, `try ${i}`)
  }
})
