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
   * `base64url(payload) '.' base64url(HMAC-SHA-256(key, 'a.' || base64url(payload)))`, the payload
   * `{"v":1,"i":<now ms>,"s":subject,"a":admin,"r":roles,"g":[ids per highest role],"e":exp}`.
   * `now` (ms) is for tests; the database accepts values issued within the last minute.
   */
  sign(capability: Capability, now?: number): string
}

// Everything but the issue time depends on the capability alone, and one capability (one request)
// may open several transactions: compute it once.
const bodies = new WeakMap<Capability, string>()

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
    cached = JSON.stringify({
      s: capability.subject,
      a: capability.isAdmin,
      r: capability.roles,
      g: ranks,
      e: capability.expiresAt ?? null,
    }).slice(1)
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
      const payload = Buffer.from(`{"v":1,"i":${Math.floor(now)},${body(capability)}`).toString(
        'base64url',
      )
      const mac = createHmac('sha256', key).update(`a.${payload}`).digest('base64url')
      return `${payload}.${mac}`
    },
  })
}
