/**
 * The verified-token cache: a repeated token skips the signature check. Keyed by the exact token
 * string (so only a byte-identical token hits), bounded, and an entry never outlives the deadline
 * the caller gives (the token's `exp`, or earlier). Only successes are stored.
 */

interface Entry<T> {
  readonly value: T
  readonly deadline: number
}

/** A bounded map from token to its verified result, with per-entry deadlines. */
export class TokenCache<T> {
  readonly #entries = new Map<string, Entry<T>>()
  readonly #max: number
  readonly #now: () => number

  /**
   * @param max the most entries; the oldest inserted is evicted first
   * @param now the clock in milliseconds (tests pass their own)
   */
  constructor(max: number, now: () => number = Date.now) {
    this.#max = max
    this.#now = now
  }

  /** The number of entries held (expired ones included until they are looked up or evicted). */
  get size(): number {
    return this.#entries.size
  }

  /** The cached value, or undefined when absent or past its deadline (then it is dropped). */
  get(token: string): T | undefined {
    const entry = this.#entries.get(token)
    if (entry === undefined) return undefined
    if (this.#now() < entry.deadline) return entry.value
    this.#entries.delete(token)
    return undefined
  }

  /**
   * Stores `value` until `deadline` (milliseconds since the epoch, exclusive). A deadline already
   * past stores nothing.
   */
  set(token: string, value: T, deadline: number): void {
    if (!(this.#now() < deadline)) return
    this.#entries.delete(token)
    if (this.#entries.size >= this.#max) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      const oldest = this.#entries.keys().next().value as string
      this.#entries.delete(oldest)
    }
    this.#entries.set(token, { value, deadline })
  }

  /** Drops the entry of `token`, if any. */
  delete(token: string): void {
    this.#entries.delete(token)
  }

  /** Drops every entry. */
  clear(): void {
    this.#entries.clear()
  }
}
