/**
 * The capability-signing key: shared by the application (which signs) and the database (whose
 * `keyhole` functions verify). Never logged, never an enumerable property.
 */
import { createHash, randomBytes } from 'node:crypto'
import { ConfigurationError } from '../errors.ts'

/** The shortest key accepted: HMAC-SHA-256's output size (RFC 2104 §3, RFC 7518 §3.2). */
export const MINIMUM_KEY_BYTES = 32

const ENCODED = /^[A-Za-z0-9+/_-]+={0,2}$/

/**
 * Reads a signing key: bytes, or their base64/base64url text (what `keyhole setup --print-key`
 * prints). Throws `KH_INVALID_OPTIONS` naming `option` (never the value) when it is shorter than
 * 32 bytes or not base64.
 */
export function parseSigningKey(key: unknown, option = 'signingKey'): Buffer {
  let bytes: Buffer | undefined
  if (key instanceof Uint8Array) bytes = Buffer.from(key)
  else if (typeof key === 'string' && ENCODED.test(key)) {
    bytes = Buffer.from(key.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
  }
  if (bytes === undefined || bytes.length < MINIMUM_KEY_BYTES) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `Invalid option ${option}: expected at least ${MINIMUM_KEY_BYTES} random bytes, or their base64url text`,
    )
  }
  return bytes
}

/** A new random key as base64url text (32 bytes). */
export function generateSigningKey(): string {
  return randomBytes(MINIMUM_KEY_BYTES).toString('base64url')
}

/**
 * HMAC-SHA-256's inner and outer pads for `key` (RFC 2104): what the database stores, so that
 * `sha256(outer || sha256(inner || message))` in SQL equals Node's `createHmac('sha256', key)`.
 */
export function hmacPads(key: Buffer): { innerPad: Buffer; outerPad: Buffer } {
  const block = Buffer.alloc(64)
  ;(key.length > 64 ? createHash('sha256').update(key).digest() : key).copy(block)
  const innerPad = Buffer.alloc(64)
  const outerPad = Buffer.alloc(64)
  for (let i = 0; i < 64; i++) {
    innerPad[i] = block[i]! ^ 0x36
    outerPad[i] = block[i]! ^ 0x5c
  }
  return { innerPad, outerPad }
}
