/**
 * What every benchmark module gives `bench/run.ts`. A module exports
 * `run(context: BenchContext): Promise<BenchSection>`; the runner calls it in the same process,
 * against the one PostgreSQL it started, and puts its rows in the table, the JSON and the summary.
 */

export interface BenchContext {
  /** `--quick`: fewer rounds and sizes, the whole run under two minutes. */
  readonly quick: boolean
  /** A superuser URL of the benchmark database (the module may create tables, roles, settings). */
  readonly databaseUrl: string
  /** Progress lines (stderr), so that a long run shows it is alive. */
  log(line: string): void
}

/** One measured comparison: `subject` against `baseline`, both measured in the same run. */
export interface BenchRow {
  /** The part of the benchmark (`insert`, `select 50 of 10⁵`, `verify HS256`…). */
  readonly group: string
  /** What was measured, e.g. `guardedInsert (group column)`. */
  readonly name: string
  /** Group IDs in the capability (or permissions in the token), when the row varies it. */
  readonly groups?: number
  /** Rows in the table, when it matters. */
  readonly tableRows?: number
  /** Operations per second of the subject. */
  readonly ops?: number
  /** What the ratio is against, e.g. `plain INSERT … VALUES`. */
  readonly baseline?: string
  /** Operations per second of the baseline (same run, interleaved). */
  readonly baselineOps?: number
  /** subject / baseline throughput: the median of the per-round ratios. */
  readonly ratio?: number
  /** A free-form measured value with its unit, e.g. `3.1 ms` or `214 entries`. */
  readonly value?: string
  /** Why there is no figure (a part not available yet), or anything the reader should know. */
  readonly note?: string
}

/** A goal of issue #7 and how this run did against it. */
export interface GoalResult {
  readonly goal: string
  /** The measured figure, e.g. `0.97×`. */
  readonly measured: string
  /** `true` met, `false` missed, `undefined` not measured in this run. */
  readonly met: boolean | undefined
  readonly note?: string
}

/** One point of a scaling curve (group IDs → ratio) for the chart. */
export interface ScalingPoint {
  readonly series: string
  readonly groups: number
  readonly ratio: number
}

export interface BenchSection {
  readonly title: string
  readonly rows: readonly BenchRow[]
  readonly goals?: readonly GoalResult[]
  readonly scaling?: readonly ScalingPoint[]
  /** Set when the part could not run at all (e.g. its module has not landed yet). */
  readonly pending?: string
  readonly notes?: readonly string[]
}

/** The signature `bench/run.ts` looks for in a benchmark module. */
export type BenchModule = {
  run(context: BenchContext): Promise<BenchSection>
}
