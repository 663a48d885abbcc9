/**
 * One value sealed and opened: AES-256-GCM (`node:crypto`), a fresh random 96-bit nonce per value,
 * and the table, column and row key bound as associated data, so a ciphertext copied to another
 * row or column fails to open. The stored text is versioned and names its key:
 * `kh1.<keyId>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { ConfigurationError, DecryptionFailed } from '../errors.ts'
import type { KeyEntry, KeyRing } from './data-keys.ts'

const VERSION = 'kh1'
const PREFIX = `${VERSION}.`
const NONCE = 12
const TAG = 16
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Where a value lives: what its associated data binds. */
export interface ValueSite {
  readonly table: string
  readonly column: string
}

/**
 * A row key as text for the associated data, the same whether the application gave it or
 * PostgreSQL returned it: a UUID in lower case (PostgreSQL prints it so), an integer in decimal
 * (int8 reads back as a string); `undefined` for anything else (no key, an empty string).
 */
export function canonicalRowKey(value: unknown): string | undefined {
  if (typeof value === 'string') {
    return value === '' ? undefined : UUID.test(value) ? value.toLowerCase() : value
  }
  if ((typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'bigint') {
    return String(value)
  }
  return undefined
}

/**
 * {@link canonicalRowKey} of a row key a write gives.
 * @throws ConfigurationError `KH_ENCRYPTED_COLUMN` when it is not a non-empty string or an integer
 */
export function rowKeyText(value: unknown, site: ValueSite, rowKey: string): string {
  const text = canonicalRowKey(value)
  if (text === undefined) {
    throw new ConfigurationError(
      'KH_ENCRYPTED_COLUMN',
      `${site.table}.${site.column} is encrypted: its row key ${rowKey} must be a non-empty string or an integer`,
    )
  }
  return text
}

function associatedData(site: ValueSite, rowKey: string): Buffer {
  return Buffer.from(`${VERSION}\0${site.table}\0${site.column}\0${rowKey}`)
}

/**
 * Nonces come from one CSPRNG draw of {@link NONCES_PER_DRAW} at a time (as Node's `randomUUID`
 * batches), each handed out once: the same random bytes as a `randomBytes(12)` per value, without
 * a call into OpenSSL per value sealed (measured: the larger part of a seal's CPU otherwise). A
 * spent batch is replaced, never refilled in place.
 */
const NONCES_PER_DRAW = 256
let nonces = Buffer.alloc(0)
let nextNonce = 0

function freshNonce(): Buffer {
  if (nextNonce === nonces.length) {
    nonces = randomBytes(NONCE * NONCES_PER_DRAW)
    nextNonce = 0
  }
  const nonce = nonces.subarray(nextNonce, nextNonce + NONCE)
  nextNonce += NONCE
  return nonce
}

/** The ciphertext text of `plaintext` under the ring's current key. */
export function seal(ring: KeyRing, site: ValueSite, rowKey: string, plaintext: string): string {
  const { id, key } = ring.current
  const nonce = freshNonce()
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(associatedData(site, rowKey))
  const body = Buffer.concat([nonce, cipher.update(plaintext, 'utf8'), cipher.final()])
  return `${VERSION}.${id}.${Buffer.concat([body, cipher.getAuthTag()]).toString('base64url')}`
}

/**
 * The key ID a stored value names (`kh1.<keyId>.<body>`, exactly two dots), or `undefined` when it
 * is not keyhole's format. Found with `indexOf`, not `split`: it runs once per value opened.
 */
export function keyIdOf(stored: string): string | undefined {
  if (!stored.startsWith(PREFIX)) return undefined
  const end = stored.indexOf('.', PREFIX.length)
  return end < 0 || stored.includes('.', end + 1) ? undefined : stored.slice(PREFIX.length, end)
}

function failed(site: ValueSite, reason: string): DecryptionFailed {
  return new DecryptionFailed({
    message: `A value of ${site.table}.${site.column} failed to decrypt: ${reason}`,
  })
}

/**
 * The plaintext of a stored value.
 * @throws DecryptionFailed `KH_DECRYPT_FAILED` (500) for a value not in keyhole's format, under a
 * key the ring does not hold, or that fails authentication (moved to another row or column, or
 * altered). The message names the table and column, never a value.
 */
export function open(ring: KeyRing, site: ValueSite, rowKey: string, stored: unknown): string {
  if (typeof stored !== 'string') throw failed(site, 'the stored value is not text')
  const id = keyIdOf(stored)
  if (id === undefined) throw failed(site, "the stored value is not in keyhole's format")
  const entry = ring.entry(id)
  if (entry === undefined) throw failed(site, `no data key has the ID ${id}`)
  const body = Buffer.from(stored.slice(PREFIX.length + id.length + 1), 'base64url')
  if (body.length < NONCE + TAG) throw failed(site, 'the stored value is truncated')
  const decipher = createDecipheriv('aes-256-gcm', entry.key, body.subarray(0, NONCE))
  decipher.setAAD(associatedData(site, rowKey))
  decipher.setAuthTag(body.subarray(body.length - TAG))
  const text = decipher.update(body.subarray(NONCE, body.length - TAG)).toString('utf8')
  try {
    // GCM's update hands back the plaintext before the tag is checked: only final() trusts it.
    decipher.final()
  } catch {
    throw failed(site, 'authentication failed (moved to another row or column, or altered)')
  }
  return text
}

/**
 * The blind index of `plaintext` under one key: HMAC-SHA-256 with the key's index key over the
 * table, column and value, base64url (43 characters). Equal values give equal indexes within a
 * column, so an equality lookup compares indexes; the row key is not bound (a lookup has none).
 */
export function blindIndex(entry: KeyEntry, site: ValueSite, plaintext: string): string {
  return createHmac('sha256', entry.indexKey)
    .update(`${VERSION}\0${site.table}\0${site.column}\0`)
    .update(plaintext, 'utf8')
    .digest('base64url')
}
