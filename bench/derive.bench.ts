/**
 * Derivation alone (claims → capability) with 1 … 10 000 permissions: B's `deriveCapability` on an
 * already verified payload. Goals: linear in the number of permissions; 10 000 in under 5 ms.
 */
import { randomUUID } from 'node:crypto'
import { access } from 'node:fs/promises'
import { timeFresh, timeIt } from './lib/time-it.ts'
import type { BenchContext, BenchRow, BenchSection, GoalResult } from './lib/types.ts'

const MODULE = new URL('../src/capability/derive.ts', import.meta.url)

interface DeriveModule {
  resolveCapabilityOptions(options?: object): unknown
  deriveCapability(payload: Readonly<Record<string, unknown>>, options: unknown): unknown
}

export async function run(context: BenchContext): Promise<BenchSection> {
  const title = 'Capability derivation (claims → capability)'
  const exists = await access(MODULE).then(
    () => true,
    () => false,
  )
  if (!exists) {
    return { title, rows: [], pending: 'src/capability/derive.ts (engineer B) has not landed yet' }
  }
  const { deriveCapability, resolveCapabilityOptions } = (await import(MODULE.href)) as DeriveModule
  const options = resolveCapabilityOptions()
  const rows: BenchRow[] = []
  const fresh = new Map<number, number>()
  const reused = new Map<number, number>()
  const minMs = context.quick ? 150 : 600
  for (const n of [1, 10, 100, 1_000, 10_000]) {
    const roles = ['member', 'moderator', 'admin']
    const json = JSON.stringify({
      sub: 'bench',
      permissions: Array.from({ length: n }, (_, i) => ({
        group: randomUUID(),
        role: roles[i % 2] as string,
      })),
    })
    // As a request derives it: from the payload jose has just decoded (decoding not timed).
    const freshMs = await timeFresh(json, (payload) => deriveCapability(payload, options), minMs)
    // One payload derived again and again: with 10 000 entries it no longer fits the CPU cache.
    const payload = Object.freeze(JSON.parse(json) as Record<string, unknown>)
    const reusedMs = await timeIt(() => deriveCapability(payload, options), minMs)
    fresh.set(n, freshMs / n)
    reused.set(n, reusedMs / n)
    const show = (ms: number) => (ms < 0.1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`)
    rows.push(
      {
        group: 'derive',
        name: 'deriveCapability, freshly decoded payload',
        groups: n,
        ops: 1000 / freshMs,
        value: show(freshMs),
      },
      {
        group: 'derive',
        name: 'deriveCapability, one payload re-derived',
        groups: n,
        ops: 1000 / reusedMs,
        value: show(reusedMs),
      },
    )
  }
  const at10k = fresh.get(10_000)! * 10_000
  const growth = fresh.get(10_000)! / fresh.get(1_000)!
  const reusedGrowth = reused.get(10_000)! / reused.get(1_000)!
  const goals: GoalResult[] = [
    {
      goal: 'Derivation of 10 000 permissions under 5 ms',
      measured: `${at10k.toFixed(2)} ms`,
      met: at10k < 5,
    },
    {
      goal: 'Derivation linear in the number of permissions (per-entry cost at 10 000 ≤ 1.5× that at 1 000, freshly decoded payload)',
      measured: `${growth.toFixed(2)}× (one payload re-derived: ${reusedGrowth.toFixed(2)}×)`,
      met: growth <= 1.5,
    },
  ]
  return {
    title,
    rows,
    goals,
    notes: [
      'Half the permissions member, half moderator; each a fresh UUID.',
      "Freshly decoded: each call derives from a payload JSON.parse has just built (not timed), as a request derives the capability right after jose decodes the token; the goal is measured so. One payload re-derived: the same objects every call; at 10 000 entries (about 1 MB of objects and strings) they no longer fit the CPU's cache, so the per-entry cost grows with the size of the working set, not with the algorithm.",
    ],
  }
}
