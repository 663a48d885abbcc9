/**
 * Per-row column access (see column-rules.ts): guards evaluated on each row a statement reads or
 * returns, as extra columns of its select list or RETURNING, and the projection that keeps only
 * the columns the row's flags allow.
 */
import type { StatementParams } from './compile.ts'
import type { Guard } from './guard.ts'
import type { Row } from './queryable.ts'
import { renderGuard, sqlText, type RowScope } from './render-guard.ts'

export interface RowView {
  /** Rendered as `(<guard>) AS "__keyhole_role_<i>"` on the row. */
  readonly flags: readonly Guard[]
  /**
   * The row without keyhole's bookkeeping columns but with the flags: the handle projects the row
   * once the statement (and any decryption, which may need a column the row's role cannot read)
   * is done.
   */
  project(row: Row): Row
}

const FLAG = '__keyhole_role_'

/** The name of flag `i` in a row. */
export function flagName(i: number): string {
  return FLAG + i
}

/** {@link RowView.project}: drops bookkeeping columns, keeps the flags. */
export function keepFlags(row: Row): Row {
  const out: Row = {}
  for (const key in row) {
    if (!key.startsWith('__keyhole_') || key.startsWith(FLAG)) out[key] = row[key]
  }
  return out
}

/** `, (<guard>) AS "__keyhole_f0", …` for the select list or RETURNING; `''` without a view. */
export function flagsSql(
  view: RowView | undefined,
  scope: RowScope,
  params: StatementParams,
): string {
  if (view === undefined) return ''
  return view.flags
    .map((g, i) => `, (${sqlText(renderGuard(g.node, scope, params))}) AS "${flagName(i)}"`)
    .join('')
}

/** The flags' part of a statement's cache key. */
export function viewKey(view: RowView | undefined): string {
  return view === undefined ? '' : view.flags.map((g) => g.id).join(',')
}
