/**
 * The verified-token cache: a repeated token skips the signature check. Keyed by the exact token
 * string (so only a byte-identical token hits), bounded, and an entry never outlives the deadline
 * the caller gives (the token's `exp`, or earlier). Only successes are stored.
 *
 * Least recently used goes first (`lru-cache`): a token in use stays while a flood of new ones
 * passes through. bench/cache.bench.ts measures it against the first-in-first-out `Map` keyhole
 * had: a hot token requested once in 1 000 among distinct ones is checked again 50 times per
 * 10 000 of its requests instead of 950, and an eviction costs constant time instead of a scan.
 */
import { LRUCache } from 'lru-cache'
import type { MetricCounters } from '../metrics.ts'

/** The counters a cache increments: hits, misses, evictions (see `KeyholeMetrics.tokenCache`). */
export type CacheCounters = Pick<MetricCounters, 'cacheHits' | 'cacheMisses' | 'cacheEvictions'>

interface Entry<T> {
  readonly value: T
  readonly deadline: number
}

/** A bounded map from token to its verified result, with per-entry deadlines. */
export class TokenCache<T> {
  readonly #entries: LRUCache<string, Entry<T>>
  readonly #now: () => number
  readonly #counters: CacheCounters | undefined

  /**
   * @param max the most entries; the least recently used is evicted first
   * @param now the clock in milliseconds (tests pass their own)
   * @param counters incremented on each hit, miss and eviction
   */
  constructor(max: number, now: () => number = Date.now, counters?: CacheCounters) {
    this.#entries = new LRUCache({
      max,
      ...(counters && {
        dispose: (_value, _key, reason) => {
          if (reason === 'evict') counters.cacheEvictions++
        },
      }),
    })
    this.#now = now
    this.#counters = counters
  }

  /** The number of entries held (expired ones included until they are looked up or evicted). */
  get size(): number {
    return this.#entries.size
  }

  /** The cached value, or undefined when absent or past its deadline (then it is dropped). */
  get(token: string): T | undefined {
    const entry = this.#entries.get(token)
    if (entry !== undefined && this.#now() < entry.deadline) {
      if (this.#counters) this.#counters.cacheHits++
      return entry.value
    }
    if (this.#counters) this.#counters.cacheMisses++
    if (entry !== undefined) this.#entries.delete(token)
    return undefined
  }

  /**
   * Stores `value` until `deadline` (milliseconds since the epoch, exclusive). A deadline already
   * past stores nothing.
   */
  set(token: string, value: T, deadline: number): void {
    if (!(this.#now() < deadline)) return
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
