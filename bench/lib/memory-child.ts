/**
 * The memory benchmark's measuring process (run with --expose-gc, alone, so its resident memory
 * is the cache's and nothing else's). Prints one JSON line.
 *
 * 1. End to end: `endToEnd` distinct HS256 tokens through keyhole's own `authenticate` (verify,
 *    derive, cache with its default bound), more than the cache holds.
 * 2. At scale: `distinct` distinct tokens through the same `TokenCache` with the same default
 *    bound, each entry a real verified result (a frozen payload and its derived capability), the
 *    tokens real HS256 JWTs signed with node:crypto (jose's WebCrypto path would take minutes for
 *    a million; the cache sees the same strings either way).
 */
import { createHmac, randomUUID } from 'node:crypto'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { TokenCache } from '../../src/token/token-cache.ts'

const [distinct = 1_000_000, endToEnd = 20_000] = process.argv.slice(2).map(Number)
const secret = 'a memory benchmark secret of at least 32 bytes'
const DEFAULT_MAX = 10_000
const gc = (globalThis as { gc?: () => void }).gc as () => void

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
const header = b64({ alg: 'HS256', typ: 'JWT' })
const groups = Array.from({ length: 5 }, () => randomUUID())

function token(i: number, now: number): { jwt: string; payload: Record<string, unknown> } {
  const payload = {
    sub: `user-${i}`,
    iss: 'https://auth.bench',
    aud: 'bench',
    iat: now,
    exp: now + 3600,
    permissions: groups.map((group, k) => ({ group, role: k === 0 ? 'moderator' : 'member' })),
  }
  const body = `${header}.${b64(payload)}`
  const signature = createHmac('sha256', secret).update(body).digest('base64url')
  return { jwt: `${body}.${signature}`, payload }
}

function memory(): { rss: number; heap: number } {
  gc()
  gc()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heap: heapUsed }
}

const now = Math.floor(Date.now() / 1000)
const baseline = memory()

// 1. The real path.
const authenticator = await createAuthenticator({
  secret,
  algorithms: ['HS256'],
  issuer: 'https://auth.bench',
  audience: 'bench',
})
for (let i = 0; i < endToEnd; i++) {
  await authenticator.authenticate({ authorization: `Bearer ${token(i, now).jwt}` })
}
const afterEndToEnd = memory()
authenticator.close()

// 2. The cache at scale, the same bound, real entries.
const options = resolveCapabilityOptions(undefined)
const cache = new TokenCache<object>(DEFAULT_MAX)
const start = memory()
const samples: { tokens: number; heap: number; rss: number }[] = []
const deadline = (now + 3600) * 1000
for (let i = 0; i < distinct; i++) {
  const { jwt, payload } = token(endToEnd + i, now)
  const frozen = Object.freeze(payload)
  const result = Object.freeze(deriveCapability(frozen, options))
  cache.set(jwt, Object.freeze({ payload: frozen, result }), deadline)
  if ((i + 1) % (distinct / 4) === 0) samples.push({ tokens: i + 1, ...memory() })
}

process.stdout.write(
  `${JSON.stringify({ distinct, endToEnd, max: DEFAULT_MAX, size: cache.size, baseline, afterEndToEnd, start, samples })}\n`,
)
