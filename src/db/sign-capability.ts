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
   * digits, 0 for none><admin: 1 or 0><roles>\n<counts>\n<group IDs>\n<subject as JSON>` (see
   * sql/000001.do.keyhole-schema.sql). Hex, fixed widths and array literals because the database
   * reads it on every request: no base64 or JSON to decode on the way.
   * `now` (ms) is for tests; the database accepts values issued within the last minute. Without
   * it, a value this signer issued for the same capability less than {@link REUSE_MS} ago is
   * returned again (see there).
   */
  sign(capability: Capability, now?: number): string
  /**
   * A system-context grant (see sql/000002.do.keyhole-system.sql):
   * `hex(HMAC-SHA-256(key, 's.' || body)) || body`, the body `<now, ms: 15 digits>` and the grants
   * as an array literal of `<operation>:<table>` (`{"read:invitations"}`), what
   * `keyhole.set_system($1)` accepts. Another prefix than {@link CapabilitySigner.sign}'s, so
   * neither value passes for the other.
   */
  signSystem(grants: readonly string[], now?: number): string
}

/**
 * How long a signed value is sent again for the same capability (one token's, cached with it)
 * instead of signing anew: an HMAC and its hex cost about 3 µs, on every request. What the
 * database checks is unchanged: the signature, an issue time within a minute of its clock (the
 * value is at most this much older, so the clocks may differ by a minute less this), the token's
 * exp; and the copy it keeps is bound to ITS transaction (backend pid and start) by
 * set_capability, whatever value opened it. The value is a bind parameter, never in a setting:
 * no SQL of the runtime role can read it, whether it was sent once or several times. A value
 * that leaked anyway (a server log of bind parameters) is refused a minute after its issue time,
 * as before.
 */
export const REUSE_MS = 1000

// Everything but the issue time depends on the capability alone, and one capability (a token's,
// cached with it) may serve many requests, each opening one transaction or more: computed once.
const bodies = new WeakMap<Capability, string>()

/** A value one signer issued for a capability, and when. */
interface Issued {
  readonly at: number
  readonly value: string
}

/** A non-negative integer as exactly `width` digits (clamped: a time beyond them is "forever"). */
function digits(value: number, width: number): string {
  return String(Math.min(Math.floor(value), 10 ** width - 1)).padStart(width, '0')
}

/** A PostgreSQL array literal of strings, every element quoted (`{"NULL"}` is not NULL). */
function arrayLiteral(items: readonly string[]): string {
  let out = '{'
  for (const item of items) {
    // The body's lines are cut at newlines: no line may hold one (role names and group IDs are
    // validated long before; this is the last guard of the format).
    if (item.includes('\n')) throw new Error('keyhole: a role or group ID contains a newline')
    out += `${out.length > 1 ? ',' : ''}"${item.replace(/[\\"]/g, '\\$&')}"`
  }
  return `${out}}`
}

function body(capability: Capability): string {
  let cached = bodies.get(capability)
  if (cached === undefined) {
    // Each group once, highest role first, so the groups of a role and those above it are a
    // prefix of the list; counts[r] says how long that prefix is for roles[r].
    const seen = new Set<string>()
    const ids: string[] = []
    const counts: number[] = capability.roles.map(() => 0)
    for (let r = capability.roles.length - 1; r >= 0; r--) {
      for (const id of capability.groups(capability.roles[r]!)) {
        if (seen.has(id)) continue
        seen.add(id)
        ids.push(id)
      }
      counts[r] = ids.length
    }
    cached =
      digits(capability.expiresAt === undefined ? 0 : Math.max(1, capability.expiresAt), 12) +
      (capability.isAdmin ? '1' : '0') +
      `${arrayLiteral(capability.roles)}\n{${counts.join(',')}}\n${arrayLiteral(ids)}\n` +
      JSON.stringify(capability.subject)
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
  // This signer's last value per capability: two signers of one capability never evict each
  // other's (the session's and the checks' or a second instance's).
  const issued = new WeakMap<Capability, Issued>()
  // `a.` for a capability, `s.` for a system grant: one can never pass for the other.
  const signAt = (prefix: 'a.' | 's.', payload: string, now: number) => {
    const signed = digits(now, 15) + payload
    return (
      createHmac('sha256', key)
        .update(prefix + signed)
        .digest('hex') + signed
    )
  }
  return Object.freeze({
    sign(capability: Capability, now?: number): string {
      if (now !== undefined) return signAt('a.', body(capability), now)
      const at = Date.now()
      const last = issued.get(capability)
      // Issued less than REUSE_MS ago, and not later than now (a clock set back).
      if (last !== undefined && at >= last.at && at - last.at < REUSE_MS) return last.value
      const value = signAt('a.', body(capability), at)
      issued.set(capability, { at, value })
      return value
    },
    signSystem(grants: readonly string[], now: number = Date.now()): string {
      return signAt('s.', arrayLiteral(grants), now)
    },
  })
}
