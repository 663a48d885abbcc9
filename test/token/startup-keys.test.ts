/**
 * The identity provider's answers at start-up: the key set (jwksUrl, or the one discovery names)
 * is fetched before serving, so a broken one stops start-up with KH_JWKS_FAILED instead of
 * failing the first request; a provider that is down does not stop it (503 until it answers).
 * Neither the discovery document nor the key set is read past 256 KiB, whether the size is
 * declared or not.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { MAX_METADATA_BYTES } from '../../src/token/bounded-body.ts'
import { discoverJwksUrl } from '../../src/token/discovery.ts'
import { audience, claims, issuer, keys, sign } from '../helpers/tokens.ts'

const key = await keys('ES256', 'start-1')
const good = JSON.stringify({ keys: [key.publicJwk] })
const huge = JSON.stringify({ keys: [], padding: 'x'.repeat(MAX_METADATA_BYTES) })

/** What the provider answers now, per request. */
let answer: (response: ServerResponse) => void = (response) => response.end(good)
let fetches = 0
const server = createServer((_request, response) => {
  fetches++
  answer(response)
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(() => new Promise((resolve) => server.close(resolve)))
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const jwksUrl = `${origin}/jwks.json`

const status = (code: number) => (response: ServerResponse) => {
  response.writeHead(code).end()
}
/** `body` in one piece with its content-length, or in 16 KiB chunks without one. */
const body =
  (text: string, chunked = false) =>
  (response: ServerResponse) => {
    if (!chunked) {
      const length = Buffer.byteLength(text)
      return void response
        .writeHead(200, { 'content-type': 'application/json', 'content-length': length })
        .end(text)
    }
    response.writeHead(200, { 'content-type': 'application/json' })
    for (let i = 0; i < text.length; i += 16384) response.write(text.slice(i, i + 16384))
    response.end()
  }

const options = (url = jwksUrl, jwks = {}) => ({
  jwksUrl: url,
  jwks,
  algorithms: ['ES256' as const],
  issuer,
  audience,
  cache: false as const,
})
const bearer = async () => ({
  authorization: `Bearer ${await sign(claims(), key.privateKey, { alg: 'ES256', kid: 'start-1' })}`,
})

t.test('the key set is fetched at start-up, and the first token uses it', async (t) => {
  answer = body(good)
  fetches = 0
  const authenticator = await createAuthenticator(options())
  t.equal(fetches, 1, 'fetched before any token')
  t.equal((await authenticator.authenticate(await bearer())).capability.subject, 'user-1')
  t.equal(fetches, 1, 'no second fetch')
})

t.test(
  'a broken key set stops start-up: KH_JWKS_FAILED naming the URL and the fault',
  async (t) => {
    const url = jwksUrl.replace(/[.]/g, '\\.')
    const cases: [string, (r: ServerResponse) => void, RegExp][] = [
      ['404', status(404), /: the key set endpoint answered 404$/],
      ['401', status(401), /: the key set endpoint answered 401$/],
      ['not JSON', body('{'), /: .+/],
      ['not a key set', body('{"keys":{}}'), /: .+/],
      ['larger than 256 KiB, declared', body(huge), /: the answer is larger than 256 KiB$/],
      ['larger than 256 KiB, chunked', body(huge, true), /: the answer is larger than 256 KiB$/],
    ]
    for (const [name, served, fault] of cases) {
      answer = served
      await t.rejects(
        createAuthenticator(options()),
        {
          code: 'KH_JWKS_FAILED',
          statusCode: 500,
          message: new RegExp(
            `^the key set ${url} could not be fetched at start-up${fault.source}`,
          ),
        },
        name,
      )
    }
  },
)

t.test('a provider that is down does not stop start-up: 503 until it answers', async (t) => {
  for (const [name, served] of [
    ['503', status(503)],
    ['500', status(500)],
    ['429', status(429)],
  ] as const) {
    answer = served
    const authenticator = await createAuthenticator(options(jwksUrl, { cooldownDuration: 20 }))
    await t.rejects(
      authenticator.authenticate(await bearer()),
      { code: 'KH_KEYS_UNAVAILABLE', statusCode: 503 },
      name,
    )
    answer = body(good)
    await new Promise((resolve) => setTimeout(resolve, 40))
    const { capability } = await authenticator.authenticate(await bearer())
    t.equal(capability.subject, 'user-1', `${name}: accepted once the provider answers`)
  }
  // No server at all, and one slower than timeoutDuration.
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const refused = await createAuthenticator(options(`http://127.0.0.1:${port}/jwks.json`))
  await t.rejects(refused.authenticate(await bearer()), { code: 'KH_KEYS_UNAVAILABLE' })
  answer = (response) => void setTimeout(() => body(good)(response), 300).unref()
  const slow = await createAuthenticator(options(jwksUrl, { timeoutDuration: 50 }))
  await t.rejects(slow.authenticate(await bearer()), { code: 'KH_KEYS_UNAVAILABLE' })
})

t.test('a key set that grows past 256 KiB on a refetch: 503, not read further', async (t) => {
  answer = body(good)
  const authenticator = await createAuthenticator(options())
  answer = body(huge, true)
  authenticator.invalidate()
  await t.rejects(authenticator.authenticate(await bearer()), {
    code: 'KH_KEYS_UNAVAILABLE',
    cause: { name: 'BodyTooLarge' },
  })
})

t.test('a discovery document larger than 256 KiB: KH_DISCOVERY_FAILED', async (t) => {
  const document = JSON.stringify({ issuer: origin, jwks_uri: jwksUrl, padding: huge })
  for (const chunked of [false, true]) {
    answer = body(document, chunked)
    await t.rejects(
      discoverJwksUrl(origin, 5000),
      {
        code: 'KH_DISCOVERY_FAILED',
        message: /openid-configuration: the answer is larger than 256 KiB$/,
      },
      chunked ? 'chunked' : 'declared',
    )
  }
  answer = body(JSON.stringify({ issuer: origin, jwks_uri: jwksUrl }))
  t.equal((await discoverJwksUrl(origin, 5000)).href, jwksUrl, 'a small one is read')
})
