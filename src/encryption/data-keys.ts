/**
 * Data keys: the 256-bit keys encrypted columns are sealed with, each named by a key ID stored
 * beside every value, so keys rotate (new writes use the current key, older ones still read).
 * Keys are resolved once at start-up (a KMS unwrap is awaited there, never per row) and cached
 * with what is derived from them (the blind-index key).
 */
import { hkdfSync } from 'node:crypto'
import { ConfigurationError } from '../errors.ts'

/**
 * Where encrypted columns get their keys: the ID new values are sealed with, and the key of any
 * ID a stored value names. Synchronous: resolve every key before handing this to keyhole (see
 * {@link unwrapDataKeys}). A key is 32 bytes; an ID is 1 to 64 of `A-Z a-z 0-9 _ -`.
 */
export interface DataKeys {
  readonly currentKeyId: string
  /**
   * Every ID whose values still read, the current one first: a blind-index lookup tries each
   * (rows not yet re-encrypted carry an older key's index). @default [currentKeyId]
   */
  readonly keyIds?: readonly string[] | undefined
  /** The key of `id`, or `undefined` when this provider does not hold it. */
  key(id: string): Uint8Array | undefined
}

const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/

/** One resolved key and what keyhole derives from it. */
export interface KeyEntry {
  readonly id: string
  readonly key: Buffer
  /** HMAC key of the blind indexes: HKDF-SHA-256 of the data key, info `keyhole blind index v1`. */
  readonly indexKey: Buffer
}

/** The keys keyhole works with: the current one, and any other by ID (cached). */
export interface KeyRing {
  readonly current: KeyEntry
  /** `undefined` for an ID the provider does not hold. */
  entry(id: string): KeyEntry | undefined
  /** Every key the provider listed (the current first), for blind-index lookups. */
  readonly all: readonly KeyEntry[]
}

function missing(message: string): ConfigurationError {
  return new ConfigurationError('KH_DATA_KEY_MISSING', message)
}

function derive(key: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, new Uint8Array(0), info, 32))
}

function checkedKey(key: unknown, what: string): Buffer {
  if (!(key instanceof Uint8Array) || key.length !== 32) {
    throw missing(`${what} must be 32 bytes (256 bits)`)
  }
  return Buffer.from(key)
}

const rings = new WeakMap<DataKeys, KeyRing>()

/**
 * The key ring of a provider, built (and its current key checked) once per provider object.
 * @throws ConfigurationError `KH_DATA_KEY_MISSING` when the current key ID is malformed or its key
 * is not 32 bytes.
 */
export function keyRing(keys: DataKeys): KeyRing {
  const known = rings.get(keys)
  if (known !== undefined) return known
  if (keys === null || typeof keys !== 'object' || typeof keys.key !== 'function') {
    throw missing('The data keys must be an object with currentKeyId and key(id)')
  }
  const entries = new Map<string, KeyEntry | undefined>()
  const entry = (id: string): KeyEntry | undefined => {
    if (entries.has(id)) return entries.get(id)
    let found: KeyEntry | undefined
    if (KEY_ID.test(id)) {
      const key = keys.key(id)
      if (key !== undefined) {
        const bytes = checkedKey(key, `The data key ${id}`)
        found = Object.freeze({ id, key: bytes, indexKey: derive(bytes, 'keyhole blind index v1') })
      }
    }
    entries.set(id, found)
    return found
  }
  const id = keys.currentKeyId
  if (typeof id !== 'string' || !KEY_ID.test(id)) {
    throw missing('The current data key ID must be 1 to 64 of A-Z a-z 0-9 _ -')
  }
  const current = entry(id)
  if (current === undefined) throw missing(`The data keys hold no key for the current ID ${id}`)
  const all = [current]
  for (const other of keys.keyIds ?? []) {
    const found = entry(other)
    if (found === undefined) throw missing(`The data keys hold no key for the listed ID ${other}`)
    if (!all.includes(found)) all.push(found)
  }
  const ring = Object.freeze({ current, entry, all: Object.freeze(all) })
  rings.set(keys, ring)
  return ring
}

/** A key's ID: 8 base64url characters derived from it (HKDF), safe to store beside values. */
export function deriveKeyId(key: Uint8Array): string {
  return derive(key, 'keyhole key id v1').subarray(0, 6).toString('base64url')
}

/** A provider over resolved keys, the first current; IDs derived from the keys. */
function fromKeys(keys: readonly Buffer[]): DataKeys {
  const byId = new Map(keys.map((k) => [deriveKeyId(k), k] as const))
  const keyIds = Object.freeze([...byId.keys()])
  return Object.freeze({
    currentKeyId: keyIds[0] as string,
    keyIds,
    key: (id: string) => byId.get(id),
  })
}

/** Options of {@link dataKeys}. */
export interface DataKeysOptions {
  /** The key new values are sealed with: 32 bytes, or their base64 / base64url text. */
  readonly current: Uint8Array | string
  /** Older keys whose values must still read (rotation): same forms. @default [] */
  readonly previous?: readonly (Uint8Array | string)[] | undefined
}

function decodeKey(value: Uint8Array | string, what: string): Buffer {
  if (typeof value === 'string') {
    const text = value.trim()
    if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
      throw missing(`${what} must be the base64 of 32 bytes`)
    }
    // Node's base64 decoder reads both alphabets; the pattern fixed the length to 32 bytes.
    return Buffer.from(text, 'base64')
  }
  return checkedKey(value, what)
}

/**
 * A provider over local keys: `current` seals new values, `previous` keep older values readable
 * until {@link reencrypt} has moved them. Each key's ID is derived from it (8 characters).
 * @throws ConfigurationError `KH_DATA_KEY_MISSING` for a key that is not 32 bytes.
 * @example
 * const keys = dataKeys({ current: process.env.NEW_KEY!, previous: [process.env.OLD_KEY!] })
 */
export function dataKeys(options: DataKeysOptions): DataKeys {
  if (options === null || typeof options !== 'object' || options.current === undefined) {
    throw missing('dataKeys needs { current }')
  }
  const previous = options.previous ?? []
  if (!Array.isArray(previous)) throw missing('dataKeys: previous must be a list of keys')
  return fromKeys([
    decodeKey(options.current, 'The current data key'),
    ...previous.map((k, i) => decodeKey(k, `Previous data key ${i}`)),
  ])
}

/**
 * The default provider: `KEYHOLE_DATA_KEY` (the base64 of 32 bytes: `openssl rand -base64 32`)
 * seals new values; `KEYHOLE_DATA_KEYS`, a comma-separated list in the same form, holds the older
 * keys still read. `undefined` when `KEYHOLE_DATA_KEY` is unset or empty.
 * @throws ConfigurationError `KH_DATA_KEY_MISSING` for a malformed key (never echoed).
 */
export function dataKeysFromEnv(env: NodeJS.ProcessEnv = process.env): DataKeys | undefined {
  const current = env.KEYHOLE_DATA_KEY
  if (current === undefined || current.trim() === '') return undefined
  const previous = (env.KEYHOLE_DATA_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '')
  try {
    return dataKeys({ current, previous })
  } catch (error) {
    throw missing(
      `KEYHOLE_DATA_KEY and KEYHOLE_DATA_KEYS must each be the base64 of 32 bytes: ${(error as Error).message}`,
    )
  }
}

/** Options of {@link unwrapDataKeys}. */
export interface UnwrapDataKeysOptions<W> {
  /** The current data key, wrapped (encrypted) by your KMS key. */
  readonly current: W
  /** Older wrapped data keys whose values must still read. @default [] */
  readonly previous?: readonly W[] | undefined
  /** Unwraps one data key: your KMS's decrypt call. Called once per key, at start-up. */
  readonly unwrap: (wrapped: W) => Promise<Uint8Array>
}

/**
 * Envelope encryption: the data keys are stored wrapped by a key that never leaves your KMS, and
 * unwrapped once here (await it at start-up); keyhole then seals and opens values locally. No
 * cloud SDK is needed by keyhole: `unwrap` is yours (see docs/columns.md for AWS and GCP).
 * @throws ConfigurationError `KH_DATA_KEY_MISSING` when an unwrapped key is not 32 bytes; what
 * `unwrap` rejects with.
 * @example
 * const keys = await unwrapDataKeys({
 *   current: Buffer.from(process.env.WRAPPED_DATA_KEY!, 'base64'),
 *   unwrap: async (blob) => (await kms.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext!,
 * })
 */
export async function unwrapDataKeys<W>(options: UnwrapDataKeysOptions<W>): Promise<DataKeys> {
  if (options === null || typeof options !== 'object' || typeof options.unwrap !== 'function') {
    throw missing('unwrapDataKeys needs { current, unwrap }')
  }
  const wrapped = [options.current, ...(options.previous ?? [])]
  const keys = await Promise.all(wrapped.map((w) => options.unwrap(w)))
  return fromKeys(keys.map((k, i) => checkedKey(k, `Unwrapped data key ${i}`)))
}
