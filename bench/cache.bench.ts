/**
 * The two caches keyhole keeps, first-in-first-out (a `Map` evicting its oldest insertion, as
 * keyhole had them) against least-recently-used (`lru-cache`, the cache npm itself uses):
 *
 * - cost: a cache hit and a miss-and-insert under churn, side by side (interleaved rounds, ratio of
 *   throughputs), for the verified-token cache (10 000 entries with deadlines) and the
 *   compiled-statement cache (1 000 entries);
 * - hit rate: one hot token (or statement) among a flood of distinct ones, and a skewed (Zipf)
 *   population of users larger than the cache. A token-cache miss costs a signature check (measured
 *   here with ES256 through jose), so the hit rate is what a request pays for.
 */
import { createHmac, generateKeyPairSync } from 'node:crypto'
import { jwtVerify, SignJWT, importPKCS8, importSPKI } from 'jose'
import { LRUCache } from 'lru-cache'
import { interleave, ratio } from './lib/interleave.ts'
import { timeIt } from './lib/time-it.ts'
import type { BenchContext, BenchRow, BenchSection, GoalResult } from './lib/types.ts'

/** What both caches offer: get (refreshing recency for the LRU), set with eviction at `max`. */
interface Cache<V> {
  readonly name: string
  get(key: string): V | undefined
  set(key: string, value: V): void
}

/** keyhole's former caches: a `Map` evicting its first key (the oldest insertion). */
function fifo<V>(max: number): Cache<V> {
  const map = new Map<string, V>()
  return {
    name: 'FIFO (Map, oldest insertion evicted)',
    get: (key) => map.get(key),
    set(key, value) {
      map.delete(key)
      if (map.size >= max) map.delete(map.keys().next().value as string)
      map.set(key, value)
    },
  }
}

function lru<V extends object>(max: number): Cache<V> {
  const cache = new LRUCache<string, V>({ max })
  return {
    name: 'LRU (lru-cache, least recently used evicted)',
    get: (key) => cache.get(key),
    set: (key, value) => void cache.set(key, value),
  }
}

const kinds: readonly (<V extends object>(max: number) => Cache<V>)[] = [fifo, lru]

/** A token-cache entry as keyhole stores it: a value and a deadline checked on every hit. */
interface Entry {
  readonly value: object
  readonly deadline: number
}

const secret = 'a cache benchmark secret of at least 32 bytes'
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
const header = b64({ alg: 'HS256', typ: 'JWT' })

/** A realistic token string per user (~300 bytes): the cache hashes the whole key. */
function token(i: number): string {
  const body = `${header}.${b64({ sub: `user-${i}`, iss: 'https://auth.bench', aud: 'bench', exp: 2_000_000_000, permissions: [{ group: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, role: 'member' }] })}`
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}

/** Zipf(1) ranks over `n`, from a seeded generator (the same sequence for both caches). */
function zipf(n: number, draws: number, seed = 42): Uint32Array {
  const cumulative = new Float64Array(n)
  let sum = 0
  for (let k = 0; k < n; k++) cumulative[k] = sum += 1 / (k + 1)
  let state = seed
  const random = () => (state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0) / 2 ** 32
  const out = new Uint32Array(draws)
  for (let d = 0; d < draws; d++) {
    const target = random() * sum
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((cumulative[mid] as number) < target) lo = mid + 1
      else hi = mid
    }
    out[d] = lo
  }
  return out
}

/**
 * Hit rate of the cache over a key sequence: a miss inserts, as keyhole does after verifying.
 * With `counted`, only that key's requests after its first (a miss in any cache) are counted.
 */
function hitRate(cache: Cache<object>, keys: ArrayLike<string>, counted?: string): number {
  let hits = 0
  let lookups = 0
  let seen = false
  const value = {}
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string
    const hit = cache.get(key) !== undefined
    if (!hit) cache.set(key, value)
    if (counted === undefined || (key === counted && seen)) {
      lookups++
      if (hit) hits++
    }
    if (key === counted) seen = true
  }
  return hits / lookups
}

/** One hot key every `every` requests, distinct keys in between (a flood of new users). */
function flood(hot: string, every: number, requests: number, distinct: (i: number) => string) {
  const keys: string[] = []
  let n = 0
  for (let i = 0; i < requests; i++) keys.push(i % every === 0 ? hot : distinct(n++))
  return keys
}

const percent = (x: number) => `${(x * 100).toFixed(1)} %`

export async function run(context: BenchContext): Promise<BenchSection> {
  const rows: BenchRow[] = []
  const notes: string[] = []
  const rounds = context.quick ? 5 : 15
  const TOKENS = 10_000
  const STATEMENTS = 1_000

  // ---- cost of a hit and of a miss under churn, side by side ----
  context.log('cache: hit and churn cost, FIFO vs lru-cache')
  const tokens = Array.from({ length: 4 * TOKENS }, (_, i) => token(i))
  const batch = 1_000
  for (const [label, max, keyOf] of [
    ['verified-token cache', TOKENS, (i: number) => tokens[i] as string],
    ['statement cache', STATEMENTS, (i: number) => `0|uuid|insert|posts|${i}|a,b,c|guard`],
  ] as const) {
    const caches = kinds.map((kind) => kind<Entry>(max))
    const entry: Entry = { value: {}, deadline: Number.MAX_SAFE_INTEGER }
    for (const cache of caches) for (let i = 0; i < max; i++) cache.set(keyOf(i), entry)
    const now = Date.now
    const hit = caches.map((cache) => {
      let i = 0
      return {
        name: cache.name,
        async op() {
          for (let b = 0; b < batch; b++) {
            const found = cache.get(keyOf(i++ % max))
            if (found === undefined || !(now() < found.deadline)) throw new Error('a miss')
          }
        },
      }
    })
    const [fifoHit, lruHit] = await interleave(hit, { rounds, perRound: context.quick ? 100 : 300 })
    rows.push({
      group: `${label}: hit`,
      name: `${lruHit!.name}, ${batch} hits`,
      ops: lruHit!.ops * batch,
      baseline: fifoHit!.name,
      baselineOps: fifoHit!.ops * batch,
      ratio: ratio(lruHit!, fifoHit!),
    })
    const churn = kinds.map((kind) => {
      const cache = kind<Entry>(max)
      let i = 0
      return {
        name: cache.name,
        async op() {
          // Every key new: a miss, an insert and an eviction each.
          for (let b = 0; b < batch; b++) {
            const key = keyOf(i++ % (4 * max))
            if (cache.get(key) === undefined) cache.set(key, entry)
          }
        },
      }
    })
    // Fewer: the FIFO pays up to thousands of skipped slots per eviction (see the notes).
    const [fifoChurn, lruChurn] = await interleave(churn, {
      rounds,
      perRound: context.quick ? 10 : 40,
    })
    rows.push({
      group: `${label}: churn`,
      name: `${lruChurn!.name}, ${batch} misses + inserts`,
      ops: lruChurn!.ops * batch,
      baseline: fifoChurn!.name,
      baselineOps: fifoChurn!.ops * batch,
      ratio: ratio(lruChurn!, fifoChurn!),
    })
  }

  // ---- what a miss costs: an ES256 signature check (jose) ----
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const signing = await importPKCS8(
    privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    'ES256',
  )
  const verifying = await importSPKI(
    publicKey.export({ type: 'spki', format: 'pem' }) as string,
    'ES256',
  )
  const es = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256' }).sign(signing)
  const verifyMs = await timeIt(() => jwtVerify(es, verifying), context.quick ? 200 : 800)
  const hitMs = (1 / (rows[0]!.ops as number)) * 1000
  rows.push({
    group: 'a token-cache miss',
    name: 'jwtVerify ES256 (what a miss costs before derivation)',
    value: `${(verifyMs * 1000).toFixed(1)} µs (a hit: ${(hitMs * 1e6).toFixed(0)} ns)`,
  })

  // ---- hit rate: a hot token in a flood of distinct tokens ----
  context.log('cache: hit rates under churn')
  const goals: GoalResult[] = []
  const requests = context.quick ? 100_000 : 1_000_000
  const fresh = (i: number) => `t${i}`
  for (const every of [100, 1_000, 5_000, 9_000]) {
    const keys = flood('hot', every, requests, fresh)
    const [f, l] = kinds.map((kind) => hitRate(kind<object>(TOKENS), keys, 'hot')) as [
      number,
      number,
    ]
    rows.push({
      group: 'hot token in a flood',
      name: `1 request in ${every.toLocaleString('en')} is the hot token, the rest all distinct (cache ${TOKENS.toLocaleString('en')})`,
      value: `LRU ${percent(l)}, FIFO ${percent(f)}`,
      note: `hot-token signature checks per 10⁴ of its requests: LRU ${Math.round((1 - l) * 1e4)}, FIFO ${Math.round((1 - f) * 1e4)}`,
    })
    if (every === 1_000) {
      goals.push({
        goal: 'A hot token keeps hitting under a flood of distinct tokens (1 in 1 000)',
        measured: `LRU ${percent(l)}, FIFO ${percent(f)}`,
        met: l > f,
      })
    }
  }
  const statementFlood = flood('hot-shape', 100, requests / 4, (i) => `shape-${i}`)
  const [sf, sl] = kinds.map((kind) =>
    hitRate(kind<object>(STATEMENTS), statementFlood, 'hot-shape'),
  ) as [number, number]
  rows.push({
    group: 'hot statement in a flood',
    name: `1 statement in 100 is the hot shape, the rest distinct shapes (cache ${STATEMENTS.toLocaleString('en')})`,
    value: `LRU ${percent(sl)}, FIFO ${percent(sf)}`,
  })

  // ---- hit rate: a skewed population larger than the cache ----
  for (const population of [20_000, 100_000]) {
    const draws = zipf(population, requests)
    const keys = Array.from(draws, (k) => `u${k}`)
    const [f, l] = kinds.map((kind) => hitRate(kind<object>(TOKENS), keys)) as [number, number]
    rows.push({
      group: 'skewed users',
      name: `${population.toLocaleString('en')} users, Zipf(1) requests, cache ${TOKENS.toLocaleString('en')}`,
      value: `LRU ${percent(l)}, FIFO ${percent(f)}`,
      note: `signature checks per 10⁴ requests: LRU ${Math.round((1 - l) * 1e4)}, FIFO ${Math.round((1 - f) * 1e4)}`,
    })
  }
  notes.push(
    'Cost rows: throughput of 1 000 cache operations per op, the two caches in interleaved rounds; ratio = LRU ÷ FIFO (above 1: LRU faster).',
    "Hit-rate rows: the same key sequence through each cache; a miss inserts, as keyhole does after verifying a token or compiling a statement. A hot key's first request, a miss in any cache, is not counted.",
    "FIFO churn: evicting a Map's first key makes V8 skip the slots of every entry deleted since the table was last compacted, so at 10 000 entries an eviction scans thousands of dead slots; lru-cache evicts from a linked list of preallocated slots in constant time.",
  )
  return { title: 'Caches: FIFO vs LRU (lru-cache)', rows, goals, notes }
}
