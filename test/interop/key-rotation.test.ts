/**
 * Key rotation at the provider, as keyhole sees it through the provider's own JWKS (oidc-provider
 * reads its keys once, so each key set is a new provider behind the same issuer URL): a token
 * signed with a new key is refused until the JWKS cooldown has passed, then accepted; a key the
 * provider removed takes its tokens along, cached ones too, once the key set is older than
 * `jwks.cacheMaxAge`. Both adapters, side by side on one timeline.
 */
import t from 'tap'
import { decodeProtectedHeader } from 'jose'
import { setTimeout as sleep } from 'node:timers/promises'
import { adapters, startApi } from './helpers/api.ts'
import { API, signingKey, startProvider } from './helpers/provider.ts'

const COOLDOWN = 1000
const MAX_AGE = 1000

const [old, fresh] = [await signingKey('ES256', 'old'), await signingKey('ES256', 'new')]
const provider = await startProvider(t, [old], ['ES256'])

t.test('a new key after the cooldown; a removed key refused', async (t) => {
  // Tokens first: one from each key set, then the provider back on the old key alone.
  const oldToken = await provider.clientCredentials('ES256')
  await provider.rotate([fresh, old])
  const newToken = await provider.clientCredentials('ES256')
  t.equal(decodeProtectedHeader(newToken).kid, 'new', 'the provider signs with the new key')
  await provider.rotate([old])

  const calls = await Promise.all(
    adapters.map((adapter) =>
      startApi(t, adapter, {
        jwksUrl: provider.jwksUri,
        algorithms: ['ES256'],
        issuer: provider.issuer,
        audience: API,
        typ: 'at+jwt',
        jwks: { cooldownDuration: COOLDOWN, cacheMaxAge: MAX_AGE },
      }),
    ),
  )
  const each = async (token: string) =>
    Promise.all(calls.map(async (call) => (await call('GET', '/me', token)).status))
  const code = async (token: string) =>
    Promise.all(calls.map(async (call) => (await call('GET', '/me', token)).body.code))

  t.same(await each(oldToken), [200, 200], 'the old key: accepted (first fetch of the set)')
  let fetched = Date.now()
  t.equal(provider.jwksFetches, 2, 'one fetch per API')

  await provider.rotate([fresh, old])
  t.same(
    await code(newToken),
    ['KH_TOKEN_KEY_UNKNOWN', 'KH_TOKEN_KEY_UNKNOWN'],
    'the new key within the cooldown: refused, the set not fetched again',
  )
  t.equal(provider.jwksFetches, 2)
  await sleep(COOLDOWN - (Date.now() - fetched) + 50)
  t.same(await each(newToken), [200, 200], 'the new key after the cooldown: accepted')
  fetched = Date.now()
  t.equal(provider.jwksFetches, 4, 'the set fetched again by each API')

  await provider.rotate([fresh])
  t.same(await each(newToken), [200, 200])
  await sleep(MAX_AGE - (Date.now() - fetched) + 50)
  t.same(
    await code(oldToken),
    ['KH_TOKEN_KEY_UNKNOWN', 'KH_TOKEN_KEY_UNKNOWN'],
    'the removed key: its cached token refused once the set is refetched',
  )
  t.same(await each(newToken), [200, 200], 'the new key still accepted')
})
