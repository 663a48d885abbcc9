/**
 * The comparison of what the layers did with what was expected, and its rendering: a matrix per
 * table (caller × operation; expected, then each layer where they differ) and, for each failing
 * cell, the statement that disagreed.
 */
import { cellKey, type ExpectedCells } from './expect-access.ts'
import {
  OPERATIONS,
  type Access,
  type LayerOutcome,
  type LayerResult,
  type Observation,
  type ProbeStatement,
} from './probe.ts'

/** One cell of the matrix: what was expected and what each layer did. */
export interface AccessCell extends Observation {
  readonly expected: Access
  /** The two layers did different things: a failure whatever the expectation says. */
  readonly disagree: boolean
  readonly ok: boolean
}

/** The outcome of a check. */
export interface AccessReport {
  /** No cell failed. */
  readonly ok: boolean
  readonly cells: readonly AccessCell[]
  readonly failures: readonly AccessCell[]
  /** The matrix of the tables with a failing cell and the failing cells' statements. */
  readonly matrix: string
}

const SYMBOL: Readonly<Record<LayerOutcome, string>> = {
  all: 'yes',
  some: 'part',
  none: 'no',
  error: 'ERROR',
  'n/a': '-',
}

export function compare(
  observations: readonly Observation[],
  expected: ExpectedCells,
): AccessCell[] {
  return observations.map((o) => {
    const want = expected.get(cellKey(o.table, o.caller, o.operation)) ?? 'none'
    // The database holds no per-role column rule (docs/columns.md): a write the column rules
    // refused in the guard layer is judged by that layer alone.
    const columnRule =
      o.guard.statements.length > 0 && o.guard.statements.every((s) => s.refused !== undefined)
    const disagree = !columnRule && o.guard.outcome !== o.rls.outcome
    const ok = !disagree && (o.guard.outcome === 'n/a' || o.guard.outcome === want)
    return { ...o, expected: want, disagree, ok }
  })
}

const MAX_SQL = 400
const shorten = (sql: string) => (sql.length > MAX_SQL ? `${sql.slice(0, MAX_SQL)}…` : sql)

function describeLayer(layer: LayerResult): string {
  return `${SYMBOL[layer.outcome]} (${layer.allowed} of ${layer.of})`
}

function describeStatement(statement: ProbeStatement): string {
  const result =
    statement.error !== undefined
      ? `failed: ${statement.error}`
      : statement.allowed
        ? 'let through'
        : statement.refused !== undefined
          ? `denied by the column rules (${statement.refused})`
          : 'denied'
  return `${shorten(statement.sql)}\n      → ${result}`
}

/**
 * The statement that shows the failure (both layers ran the same statements, row by row): the
 * first where the layers differ, or the first that failed or went against the expectation.
 */
function culprit(cell: AccessCell): number {
  const index = cell.guard.statements.findIndex((g, i) => {
    const r = cell.rls.statements[i] as ProbeStatement
    if (cell.disagree) return `${g.allowed} ${g.error}` !== `${r.allowed} ${r.error}`
    return (
      g.error !== undefined ||
      (cell.expected === 'all' ? !g.allowed : cell.expected === 'none' && g.allowed)
    )
  })
  return Math.max(index, 0)
}

function details(cell: AccessCell): string {
  const head = cell.disagree
    ? `≠ ${cell.table} · ${cell.caller} · ${cell.operation}: the layers disagree (expected ${SYMBOL[cell.expected]})`
    : `✗ ${cell.table} · ${cell.caller} · ${cell.operation}: expected ${SYMBOL[cell.expected]}`
  const i = culprit(cell)
  return [
    `${head}; guard ${describeLayer(cell.guard)}, rls ${describeLayer(cell.rls)}`,
    `    guard: ${describeStatement(cell.guard.statements[i] as ProbeStatement)}`,
    `    rls:   ${describeStatement(cell.rls.statements[i] as ProbeStatement)}`,
  ].join('\n')
}

function table(name: string, cells: readonly AccessCell[]): string {
  const callers = [...new Set(cells.map((c) => c.caller))]
  const width = Math.max(name.length, ...callers.map((c) => c.length), 9) + 2
  const column = (text: string, i: number) => text.padEnd((OPERATIONS[i] as string).length + 2)
  const lines = [name.padEnd(width) + OPERATIONS.map((o, i) => column(o, i)).join('')]
  for (const caller of callers) {
    const row = OPERATIONS.map(
      (o) => cells.find((c) => c.caller === caller && c.operation === o) as AccessCell,
    )
    const shown = (c: AccessCell) => (c.guard.outcome === 'n/a' ? '-' : SYMBOL[c.expected])
    lines.push(caller.padEnd(width) + row.map((c, i) => column(shown(c), i)).join(''))
    if (row.every((c) => c.ok)) continue
    for (const layer of ['guard', 'rls'] as const) {
      const mark = (c: AccessCell) => {
        const got = c[layer].outcome
        const flag = c.disagree ? ' ≠' : !c.ok ? ' ✗' : ''
        return `${SYMBOL[got]}${flag}`
      }
      lines.push(`  ${layer}`.padEnd(width) + row.map((c, i) => column(mark(c), i)).join(''))
    }
  }
  return lines.map((l) => l.trimEnd()).join('\n')
}

/** The report of `cells`: the failing tables' matrices and each failing cell's statements. */
export function report(cells: readonly AccessCell[]): AccessReport {
  const failures = cells.filter((c) => !c.ok)
  const tables = [...new Set(failures.map((c) => c.table))]
  const matrix = [
    `keyhole/testing: ${failures.length} of ${cells.length} cells failed ` +
      '(each caller: expected; where a cell fails, what the guard and the rls layer did; ' +
      '✗ = not as expected, ≠ = the layers disagree)',
    ...tables.map((t) =>
      table(
        t,
        cells.filter((c) => c.table === t),
      ),
    ),
    ...failures.map(details),
  ].join('\n\n')
  return { ok: failures.length === 0, cells, failures, matrix }
}
