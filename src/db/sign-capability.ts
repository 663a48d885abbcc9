/**
 * Signs a capability into the value `keyhole.set_capability($1)` accepts (see
 * sql/000001.do.keyhole-schema.sql for the format and why it is bound to the transaction there).
 */
import { createHmac } from 'node:crypto'
import type { Capability } from '../capability/capability.ts'
import { parseSigningKey } from './signing-key.ts'

/** Signs capabilities with one key. The key is held in a closure, never in a property. */
export interface CapabilitySigner {
  /**
   * `hex(HMAC-SHA-256(key, 'a.' || body)) || body`, the body `<now, ms: 15 digits><exp, s: 12
   * digits, 0 for none>{"s":subject,"a":admin,"r":roles,"g":[ids per highest role]}`. Hex and a
   * fixed-width prefix because the database verifies it on every request: no base64 or JSON to
   * decode before the signature and the freshness are checked.
   * `now` (ms) is for tests; the database accepts values issued within the last minute.
   */
  sign(capability: Capability, now?: number): string
}

// Everything but the issue time depends on the capability alone, and one capability (one request)
// may open several transactions: compute it once.
const bodies = new WeakMap<Capability, string>()

/** A non-negative integer as exactly `width` digits (clamped: a time beyond them is "forever"). */
function digits(value: number, width: number): string {
  return String(Math.min(Math.floor(value), 10 ** width - 1)).padStart(width, '0')
}

function body(capability: Capability): string {
  let cached = bodies.get(capability)
  if (cached === undefined) {
    // Each group once, under the highest role that holds it: group_ids(role) unions the ranks from
    // `role` upwards, and the payload stays small for large capabilities.
    const seen = new Set<string>()
    const ranks: string[][] = capability.roles.map(() => [])
    for (let i = capability.roles.length - 1; i >= 0; i--) {
      for (const id of capability.groups(capability.roles[i]!)) {
        if (seen.has(id)) continue
        seen.add(id)
        ranks[i]!.push(id)
      }
    }
    cached =
      digits(capability.expiresAt === undefined ? 0 : Math.max(1, capability.expiresAt), 12) +
      JSON.stringify({
        s: capability.subject,
        a: capability.isAdmin,
        r: capability.roles,
        g: ranks,
      })
    bodies.set(capability, cached)
  }
  return cached
}

/**
 * Creates a signer for `signingKey` (at least 32 bytes, or their base64url text).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for a short or malformed key.
 * @example
 * const signer = createCapabilitySigner(process.env.KEYHOLE_SIGNING_KEY)
 * await client.query('SELECT keyhole.set_capability($1)', [signer.sign(capability)])
 */
export function createCapabilitySigner(signingKey: Uint8Array | string): CapabilitySigner {
  const key = parseSigningKey(signingKey)
  return Object.freeze({
    sign(capability: Capability, now: number = Date.now()): string {
      const signed = digits(now, 15) + body(capability)
      return createHmac('sha256', key).update(`a.${signed}`).digest('hex') + signed
    },
  })
}
