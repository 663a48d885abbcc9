/**
 * Derivation alone (claims → capability) with 1 … 10 000 permissions: B's `deriveCapability` on an
 * already verified payload. Goals: linear in the number of permissions; 10 000 in under 5 ms.
 */
import { randomUUID } from 'node:crypto'
import { access } from 'node:fs/promises'
import { timeIt } from './lib/time-it.ts'
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
  const perEntry = new Map<number, number>()
  for (const n of [1, 10, 100, 1_000, 10_000]) {
    const roles = ['member', 'moderator', 'admin']
    const payload = Object.freeze({
      sub: 'bench',
      permissions: Array.from({ length: n }, (_, i) => ({
        group: randomUUID(),
        role: roles[i % 2] as string,
      })),
    })
    const ms = await timeIt(() => deriveCapability(payload, options), context.quick ? 150 : 600)
    perEntry.set(n, ms / n)
    rows.push({
      group: 'derive',
      name: 'deriveCapability',
      groups: n,
      ops: 1000 / ms,
      value: `${ms < 0.1 ? (ms * 1000).toFixed(1) + ' µs' : ms.toFixed(2) + ' ms'}`,
    })
  }
  const at10k = 1 / (rows.at(-1)!.ops! / 1000)
  const growth = perEntry.get(10_000)! / perEntry.get(1_000)!
  const goals: GoalResult[] = [
    {
      goal: 'Derivation of 10 000 permissions under 5 ms',
      measured: `${at10k.toFixed(2)} ms`,
      met: at10k < 5,
    },
    {
      goal: 'Derivation linear in the number of permissions (per-entry cost at 10 000 ≤ 1.5× that at 1 000)',
      measured: `${growth.toFixed(2)}×`,
      met: growth <= 1.5,
    },
  ]
  return {
    title,
    rows,
    goals,
    notes: ['Half the permissions member, half moderator; each a fresh UUID.'],
  }
}
