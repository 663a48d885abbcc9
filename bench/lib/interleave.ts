/**
 * Side-by-side measurement: several ways of doing the same thing run in turns (A B C A B C…) on
 * the same connection, so that a shared, noisy machine slows every side alike. Absolute times are
 * noise here; the ratios are the figures that count.
 */

/** One way of doing the thing; `prepare` runs before each of its rounds and is not timed. */
export interface Side {
  readonly name: string
  /** One operation; `i` counts operations within the round. */
  op(i: number): Promise<unknown>
  prepare?(count: number): Promise<void>
}

export interface SideResult {
  readonly name: string
  /** Operations per second over all measured rounds. */
  readonly ops: number
  /** Milliseconds of each measured round. */
  readonly rounds: readonly number[]
}

export interface InterleaveOptions {
  /** Measured rounds per side (one warm-up round each comes first). */
  readonly rounds: number
  /** Operations per round. */
  readonly perRound: number
}

async function round(side: Side, perRound: number): Promise<number> {
  await side.prepare?.(perRound)
  const start = process.hrtime.bigint()
  for (let i = 0; i < perRound; i++) await side.op(i)
  return Number(process.hrtime.bigint() - start) / 1e6
}

/** Runs the sides in turns: one warm-up round each (also past PostgreSQL's five custom plans), then `rounds`. */
export async function interleave(
  sides: readonly Side[],
  { rounds, perRound }: InterleaveOptions,
): Promise<SideResult[]> {
  for (const side of sides) await round(side, perRound)
  const times = sides.map(() => [] as number[])
  for (let r = 0; r < rounds; r++) {
    // Rotate who goes first, so that no side always follows the same neighbour.
    for (let k = 0; k < sides.length; k++) {
      const s = (k + r) % sides.length
      times[s]!.push(await round(sides[s]!, perRound))
    }
  }
  return sides.map((side, s) => {
    const total = times[s]!.reduce((a, b) => a + b, 0)
    return { name: side.name, ops: ((rounds * perRound) / total) * 1000, rounds: times[s]! }
  })
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** subject/baseline throughput: the median of the per-round ratios (robust to one noisy round). */
export function ratio(subject: SideResult, baseline: SideResult): number {
  return median(subject.rounds.map((ms, i) => baseline.rounds[i]! / ms))
}
