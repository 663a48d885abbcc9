/**
 * How large a capability fits in a token that still passes a 16 KiB header limit (Node's default
 * `maxHeaderSize`): a `permissions` claim of `{ group: <uuid>, role }` entries, HS256.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import type { BenchContext, BenchSection } from './lib/types.ts'

const LIMIT = 16 * 1024
/** Room for the request line and the other headers a browser or proxy sends alongside. */
const OTHER_HEADERS = 1024

async function sizes(n: number, key: Uint8Array): Promise<{ header: number; token: number }> {
  const token = await new SignJWT({
    permissions: Array.from({ length: n }, () => ({ group: randomUUID(), role: 'member' })),
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('0f8fad5b-d9cb-469f-a165-70867728950e')
    .setIssuer('https://auth.example.com')
    .setAudience('https://api.example.com')
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(key)
  return { header: Buffer.byteLength(`Authorization: Bearer ${token}\r\n`), token: token.length }
}

async function largest(fits: (n: number) => Promise<boolean>): Promise<number> {
  let lo = 0
  let hi = 1000
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (await fits(mid)) lo = mid
    else hi = mid - 1
  }
  return lo
}

export async function run(_context: BenchContext): Promise<BenchSection> {
  const key = new TextEncoder().encode('a benchmark secret of at least 32 bytes!')
  const budget = LIMIT - OTHER_HEADERS
  const lo = await largest(async (n) => (await sizes(n, key)).header <= budget)
  const underMax = await largest(async (n) => (await sizes(n, key)).token <= 8192)
  const perEntry = ((await sizes(100, key)).token - (await sizes(0, key)).token) / 100
  return {
    title: 'Token size',
    rows: [
      {
        group: 'token size',
        name: 'largest permissions claim under a 16 KiB header limit',
        groups: lo,
        value: `${lo} entries`,
        note: `${perEntry.toFixed(1)} bytes per entry; ${OTHER_HEADERS} bytes left for other headers`,
      },
      {
        group: 'token size',
        name: 'largest permissions claim under keyhole’s default maxTokenBytes (8 192)',
        groups: underMax,
        value: `${underMax} entries`,
      },
    ],
    notes: [
      'Beyond it the server answers 431 (headers too large) before keyhole runs; keyhole also refuses tokens above its maxTokenBytes (default 8 192) with 401. Capabilities larger than this need a reference token or a claims look-up, not a bigger header.',
    ],
  }
}
