/**
 * Memory: the verified-token cache stays bounded. A million distinct tokens (quick: 100 000)
 * through a cache of the default size leave resident memory where ten thousand left it; the real
 * authenticate path (verify, derive, cache) with more tokens than the cache holds behaves the
 * same. Measured in a child process with --expose-gc (bench/lib/memory-child.ts), after full GCs.
 */
import { runChildJson } from './lib/child-json.ts'
import type { BenchContext, BenchSection } from './lib/types.ts'

/** The stated bound: resident memory above the process's own baseline, default cache size. */
export const RSS_BOUND_MIB = 96

interface Sample {
  readonly rss: number
  readonly heap: number
}
interface ChildResult {
  readonly distinct: number
  readonly endToEnd: number
  readonly max: number
  readonly size: number
  readonly baseline: Sample
  readonly afterEndToEnd: Sample
  readonly start: Sample
  readonly samples: readonly (Sample & { tokens: number })[]
}

const MiB = 1024 * 1024
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

function measure(distinct: number, endToEnd: number): Promise<ChildResult> {
  return runChildJson<ChildResult>(new URL('./lib/memory-child.ts', import.meta.url), {
    flags: ['--expose-gc'],
    args: [String(distinct), String(endToEnd)],
  })
}

export async function run(context: BenchContext): Promise<BenchSection> {
  const distinct = context.quick ? 100_000 : 1_000_000
  const endToEnd = context.quick ? 12_000 : 20_000
  context.log(`memory: ${distinct} distinct tokens through the cache, ${endToEnd} end to end`)
  const r = await measure(distinct, endToEnd)
  const last = r.samples[r.samples.length - 1] as Sample & { tokens: number }
  const first = r.samples[0] as Sample & { tokens: number }
  const aboveBaseline = last.rss - r.baseline.rss
  const growth = last.heap - first.heap
  return {
    title: 'Memory (verified-token cache)',
    rows: [
      {
        group: 'memory',
        name: `authenticate(): ${endToEnd.toLocaleString('en')} distinct tokens, default cache`,
        value: `heap +${mib(r.afterEndToEnd.heap - r.baseline.heap)}, rss +${mib(r.afterEndToEnd.rss - r.baseline.rss)}`,
      },
      ...r.samples.map((s) => ({
        group: 'memory',
        name: `cache (max ${r.max.toLocaleString('en')}): ${s.tokens.toLocaleString('en')} distinct tokens`,
        value: `heap ${mib(s.heap)}, rss ${mib(s.rss)}`,
      })),
    ],
    goals: [
      {
        goal: `Resident memory after ${distinct.toLocaleString('en')} distinct tokens stays under ${RSS_BOUND_MIB} MiB above the process baseline (default cache.max ${r.max.toLocaleString('en')})`,
        measured: `+${mib(aboveBaseline)} (heap ${mib(growth)} between ${first.tokens.toLocaleString('en')} and ${last.tokens.toLocaleString('en')} tokens)`,
        met: aboveBaseline < RSS_BOUND_MIB * MiB && r.size <= r.max,
      },
    ],
    notes: [
      `The cache held ${r.size.toLocaleString('en')} entries at the end (its bound is ${r.max.toLocaleString('en')}): the least recently used is evicted first, so memory is bounded by max × (token + verified result), whatever the number of distinct tokens.`,
      'Tokens at scale are real HS256 JWTs signed with node:crypto and entries real derived capabilities; the end-to-end row goes through keyhole’s authenticate (jose verification) with more tokens than the cache holds.',
    ],
  }
}
