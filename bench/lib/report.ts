/**
 * The run's outputs: a plain-text table for the terminal, the Markdown summary and the SVG chart
 * of the scaling runs (group IDs in the capability → throughput ratio), drawn by hand.
 */
import type { BenchRow, BenchSection, ScalingPoint } from './types.ts'

export interface RunInfo {
  readonly date: string
  readonly mode: 'quick' | 'full'
  readonly command: string
  readonly node: string
  readonly postgres: string
  readonly cpus: string
  readonly seconds: number
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined
    ? ''
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

const count = (n: number | undefined) => (n === undefined ? '' : n.toLocaleString('en-US'))

function cells(row: BenchRow): string[] {
  return [
    row.group,
    row.name,
    count(row.groups),
    count(row.tableRows),
    fmt(row.ops),
    row.baseline ?? '',
    fmt(row.baselineOps),
    row.ratio === undefined ? (row.value ?? '') : `${row.ratio.toFixed(2)}×`,
    row.note ?? '',
  ]
}

const HEADER = [
  'part',
  'measured',
  'groups',
  'rows',
  'ops/s',
  'against',
  'ops/s',
  'ratio / value',
  'note',
]

/** The terminal table of one section. */
export function textTable(section: BenchSection): string {
  const lines = [`== ${section.title}${section.pending ? ` — pending: ${section.pending}` : ''}`]
  if (section.rows.length === 0) return lines.join('\n')
  const table = [HEADER, ...section.rows.map(cells)]
  const widths = HEADER.map((_, c) => Math.max(...table.map((r) => r[c]!.length)))
  for (const row of table)
    lines.push(
      row
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
  for (const goal of section.goals ?? []) {
    const verdict = goal.met === undefined ? 'not measured' : goal.met ? 'MET' : 'MISSED'
    lines.push(`goal: ${goal.goal} — ${goal.measured} — ${verdict}`)
  }
  return lines.join('\n')
}

const escapeCell = (text: string) => text.replace(/\|/g, '\\|')

/** The Markdown summary: run info, the goals, then each section's table and notes. */
export function markdown(info: RunInfo, sections: readonly BenchSection[], chart: string): string {
  const out: string[] = [
    '# keyhole benchmark results',
    '',
    `Made by \`${info.command}\` on ${info.date} (${info.mode} mode, ${info.seconds.toFixed(0)} s): ` +
      `Node ${info.node}, PostgreSQL ${info.postgres} (embedded, same machine), ${info.cpus}.`,
    'Absolute throughput on a shared machine is noise; the ratios, measured side by side in one run, are the figures that count.',
    '',
    '## Goals',
    '',
    '| goal | measured | met |',
    '|---|---|---|',
  ]
  for (const section of sections) {
    for (const goal of section.goals ?? []) {
      const met = goal.met === undefined ? 'not measured' : goal.met ? 'yes' : '**no**'
      out.push(`| ${escapeCell(goal.goal)} | ${escapeCell(goal.measured)} | ${met} |`)
    }
  }
  out.push('', `![scaling chart](${chart})`, '')
  for (const section of sections) {
    out.push(`## ${section.title}`, '')
    if (section.pending) out.push(`_Pending: ${section.pending}_`, '')
    if (section.rows.length > 0) {
      out.push(
        `| ${HEADER.join(' | ')} |`,
        `|${HEADER.map((_, i) => (i >= 2 && i <= 7 && i !== 5 ? '---:' : '---')).join('|')}|`,
      )
      for (const row of section.rows) out.push(`| ${cells(row).map(escapeCell).join(' | ')} |`)
      out.push('')
    }
    for (const note of section.notes ?? []) out.push(`- ${note}`)
    if (section.notes?.length) out.push('')
  }
  return out.join('\n')
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf']

const xml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/**
 * A line chart: x = group IDs in the capability (log scale, 1 … 10 000), y = throughput ratio
 * against the plain statement; one line per series; 1.0 (as fast as plain) drawn dashed. Ratios
 * above the top of the axis are clipped to it and marked with a hollow point.
 */
export function scalingSvg(points: readonly ScalingPoint[], title: string): string {
  const width = 760
  const height = 420
  const left = 60
  const right = 250
  const top = 40
  const bottom = 50
  const plotW = width - left - right
  const plotH = height - top - bottom
  const yMax = 1.2
  const maxGroups = Math.max(10_000, ...points.map((p) => p.groups))
  const decades = Math.ceil(Math.log10(maxGroups))
  const x = (groups: number) => left + (Math.log10(groups) / decades) * plotW
  const y = (ratio: number) => top + plotH - (Math.min(ratio, yMax) / yMax) * plotH
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14" font-weight="bold">${xml(title)}</text>`,
  ]
  for (let r = 0; r <= yMax + 1e-9; r += 0.2) {
    const yy = y(r).toFixed(1)
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${r.toFixed(1)}×</text>`,
    )
  }
  for (let d = 0; d <= decades; d++) {
    const xx = x(10 ** d).toFixed(1)
    out.push(
      `<line x1="${xx}" y1="${top}" x2="${xx}" y2="${top + plotH}" stroke="#eee"/>`,
      `<text x="${xx}" y="${top + plotH + 18}" text-anchor="middle">${(10 ** d).toLocaleString('en-US')}</text>`,
    )
  }
  out.push(
    `<line x1="${left}" y1="${y(1).toFixed(1)}" x2="${left + plotW}" y2="${y(1).toFixed(1)}" stroke="#555" stroke-dasharray="6 4"/>`,
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`,
    `<text x="${left + plotW / 2}" y="${height - 12}" text-anchor="middle">group IDs in the capability (log scale)</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">throughput ÷ plain statement</text>`,
  )
  const series = [...new Set(points.map((p) => p.series))]
  series.forEach((name, i) => {
    const color = COLORS[i % COLORS.length]!
    const line = points.filter((p) => p.series === name).sort((a, b) => a.groups - b.groups)
    const path = line.map(
      (p, k) => `${k ? 'L' : 'M'}${x(p.groups).toFixed(1)},${y(p.ratio).toFixed(1)}`,
    )
    out.push(`<path d="${path.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`)
    for (const p of line) {
      const clipped = p.ratio > yMax
      out.push(
        `<circle cx="${x(p.groups).toFixed(1)}" cy="${y(p.ratio).toFixed(1)}" r="3.5" fill="${clipped ? 'white' : color}" stroke="${color}"><title>${xml(name)}: ${p.groups} groups → ${p.ratio.toFixed(2)}×</title></circle>`,
      )
    }
    const ly = top + 10 + i * 20
    out.push(
      `<line x1="${left + plotW + 16}" y1="${ly}" x2="${left + plotW + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${left + plotW + 46}" y="${ly}" dominant-baseline="middle">${xml(name)}</text>`,
    )
  })
  out.push('</svg>', '')
  return out.join('\n')
}
