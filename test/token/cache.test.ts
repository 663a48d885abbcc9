import t from 'tap'
import type { KeyholeOptions } from '../../src/options.ts'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { TokenCache } from '../../src/token/token-cache.ts'
import { audience, claims, issuer, keys, now, sign } from '../helpers/tokens.ts'

const es = await keys('ES256')
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const esToken = (extra: Record<string, unknown> = {}) =>
  sign(claims(extra), es.privateKey, { alg: 'ES256' })

/** An authenticator whose key lookups are counted: one lookup per signature check. */
async function counted(options: Partial<KeyholeOptions> = {}) {
  const calls = { count: 0 }
  const authenticator = await createAuthenticator({
    getKey: () => {
      calls.count++
      return es.publicKey
    },
    algorithms: ['ES256'],
    issuer,
    audience,
    ...options,
  })
  return { authenticator, calls }
}

t.test('TokenCache: deadlines, eviction, clear', async (t) => {
  let clock = 1000
  const cache = new TokenCache<string>(2, () => clock)
  cache.set('a', 'A', 2000)
  t.equal(cache.get('a'), 'A')
  t.equal(cache.get('missing'), undefined)
  clock = 2000
  t.equal(cache.get('a'), undefined, 'gone at its deadline, never beyond')
  t.equal(cache.size, 0, 'and dropped')
  cache.set('past', 'P', 1999)
  t.equal(cache.size, 0, 'a deadline already past stores nothing')
  cache.set('b', 'B', 5000)
  cache.set('c', 'C', 5000)
  cache.set('b', 'B2', 5000)
  cache.set('d', 'D', 5000)
  t.equal(cache.size, 2, 'bounded')
  t.equal(cache.get('c'), undefined, 'the least recently used is evicted first')
  t.equal(cache.get('b'), 'B2')
  t.equal(cache.get('d'), 'D')
  cache.clear()
  t.equal(cache.size, 0)
  t.equal(new TokenCache<string>(1).get('x'), undefined, 'the default clock is Date.now')
})

t.test('TokenCache: a token in use stays while new ones flood through', async (t) => {
  const cache = new TokenCache<number>(1000)
  const deadline = Date.now() + 60_000
  cache.set('hot', 0, deadline)
  let misses = 0
  for (let i = 1; i <= 20_000; i++) {
    cache.set(`new-${i}`, i, deadline)
    if (i % 100 === 0 && cache.get('hot') === undefined) {
      misses++
      cache.set('hot', 0, deadline)
    }
  }
  t.equal(misses, 0, 'a first-in-first-out cache would have evicted it every 1 000 insertions')
  t.equal(cache.size, 1000, 'bounded')
  cache.delete('hot')
  t.equal(cache.get('hot'), undefined, 'delete')
})

t.test('a repeated token skips the signature check', async (t) => {
  const { authenticator, calls } = await counted()
  const token = await esToken()
  const a = await authenticator.authenticate(bearer(token))
  const b = await authenticator.authenticate(bearer(token))
  t.equal(calls.count, 1)
  t.equal(a.capability, b.capability, 'the same frozen capability')
  t.ok(Object.isFrozen(a))
  authenticator.close()
  await authenticator.authenticate(bearer(token))
  t.equal(calls.count, 2, 'close() drops the cache')
})

t.test('a cache can be turned off', async (t) => {
  for (const cache of [false, { enabled: false }] as const) {
    const { authenticator, calls } = await counted({ cache })
    const token = await esToken()
    await authenticator.authenticate(bearer(token))
    await authenticator.authenticate(bearer(token))
    t.equal(calls.count, 2, JSON.stringify(cache))
    authenticator.close()
  }
})

t.test('failures are never cached; tokens without exp are not cached', async (t) => {
  const { authenticator, calls } = await counted({ requireExp: false })
  const expired = await esToken({ exp: now() - 10 })
  await t.rejects(authenticator.authenticate(bearer(expired)), { code: 'KH_TOKEN_EXPIRED' })
  await t.rejects(authenticator.authenticate(bearer(expired)), { code: 'KH_TOKEN_EXPIRED' })
  t.equal(calls.count, 2)
  const forever = await esToken({ exp: undefined })
  await authenticator.authenticate(bearer(forever))
  await authenticator.authenticate(bearer(forever))
  t.equal(calls.count, 4)
})

t.test('maxTokenAge shortens a cache entry to iat + maxTokenAge', async (t) => {
  const { authenticator, calls } = await counted({ maxTokenAge: 60 })
  // iat + maxTokenAge is already past for the cache (the deadline is exclusive) but jose accepts
  // it: age == maxTokenAge. So every request checks the signature again.
  const token = await esToken({ iat: now() - 60 })
  await authenticator.authenticate(bearer(token)).catch(() => undefined)
  await authenticator.authenticate(bearer(token)).catch(() => undefined)
  t.equal(calls.count, 2)
  const fresh = await esToken()
  await authenticator.authenticate(bearer(fresh))
  await authenticator.authenticate(bearer(fresh))
  t.equal(calls.count, 3)
})

t.test('revocation is checked on every request, cache hits included', async (t) => {
  const revoked = new Set<unknown>()
  const seen: unknown[] = []
  const { authenticator, calls } = await counted({
    isRevoked: async (payload) => {
      seen.push(payload.jti)
      return revoked.has(payload.jti)
    },
  })
  const token = await esToken({ jti: 't-1' })
  t.ok(await authenticator.authenticate(bearer(token)))
  revoked.add('t-1')
  const error = await authenticator.authenticate(bearer(token)).catch((e) => e)
  t.match(error, { code: 'KH_TOKEN_REVOKED', statusCode: 401, realm: 'keyhole' })
  t.equal(calls.count, 1, 'the second request was a cache hit')
  t.same(seen, ['t-1', 't-1'])
})

t.test('isRevoked fails closed', async (t) => {
  const token = await esToken()
  const undecided = await counted({ isRevoked: (() => undefined) as never })
  await t.rejects(undecided.authenticator.authenticate(bearer(token)), {
    code: 'KH_TOKEN_REVOKED',
  })
  const failing = await counted({
    isRevoked: () => {
      throw new Error('revocation store down')
    },
  })
  await t.rejects(failing.authenticator.authenticate(bearer(token)), {
    code: 'KH_UNAVAILABLE',
    statusCode: 503,
    name: 'ServiceUnavailable',
  })
})
