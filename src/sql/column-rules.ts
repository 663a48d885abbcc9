/**
 * Column rules: per table, which columns each role may read and write, and which columns no
 * runtime caller may name at all (`hidden`). Parsed and frozen here when the policies are defined;
 * enforced by the request handle and the system handle (see docs/columns.md).
 */
import type { Capability } from '../capability/capability.ts'
import { ColumnDenied, ConfigurationError } from '../errors.ts'
import { isFilter } from './filter.ts'
import { adminOnly, and, Guard, isGuard, type GuardNode } from './guard.ts'
import { describeInput, quoteIdentifier } from './identifier.ts'
import { parseOrderBy, type OrderBy } from './order-by.ts'
import type { Row } from './queryable.ts'
import { flagName, keepFlags, type RowView } from './row-view.ts'
import type { Returning } from './run-statement.ts'
import type { Where } from './where.ts'

/** The columns a role may read or write: a list, or `'*'` (every column that is not hidden). */
export type ColumnList<C extends string = string> = '*' | readonly C[]

/**
 * One table's column rules. A role inherits the columns of every role below it in the hierarchy
 * (member < moderator < admin); an admin follows the rule of the highest role. A table without
 * `read` lets every reader read every column that is not hidden; without `write`, the same for
 * writes.
 */
export interface ColumnRules<C extends string = string> {
  /** Role → the columns that role may read (its own and those of the roles below it). */
  readonly read?: { readonly [role: string]: ColumnList<C> }
  /** Role → the columns an INSERT's values or an UPDATE's set may name at that role. */
  readonly write?: { readonly [role: string]: ColumnList<C> }
  /**
   * Columns no runtime caller may read or write: keyhole never names them in SQL. A table with
   * hidden columns lists its readable columns (`read`, no `'*'`): keyhole does not know the
   * table's other columns, and `SELECT *` would name the hidden ones.
   */
  readonly hidden?: readonly C[]
}

const KINDS = ['read', 'write', 'hidden']

function invalid(message: string): never {
  throw new ConfigurationError('KH_INVALID_OPTIONS', message)
}

function columnList(value: unknown, what: string): readonly string[] {
  if (!Array.isArray(value)) return invalid(`${what} must be '*' or a list of columns`)
  for (const column of value) quoteIdentifier(column, 'column')
  return Object.freeze([...new Set(value as string[])])
}

function roleRules(
  value: unknown,
  what: string,
  roles: Set<string>,
): { readonly [role: string]: ColumnList } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return invalid(`${what} must be an object of role → columns`)
  }
  const rules: Record<string, ColumnList> = Object.create(null)
  for (const [role, list] of Object.entries(value)) {
    quoteIdentifier(role, 'role')
    roles.add(role)
    rules[role] = list === '*' ? '*' : columnList(list, `${what}.${role}`)
  }
  return Object.freeze(rules)
}

/**
 * A table's `columns`, checked and frozen; the roles it names are added to `roles` (checked
 * against the hierarchy when the policies are bound).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for an unknown key, a rule that is not role →
 * `'*'` or a list, a hidden column also readable or writable, or hidden columns without explicit
 * read lists; `KH_INVALID_IDENTIFIER` for a bad column or role name.
 */
export function parseColumnRules(value: unknown, table: string, roles: Set<string>): ColumnRules {
  const what = `The columns of table ${table}`
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return invalid(`${what} must be { read?, write?, hidden? }`)
  }
  const rules: { -readonly [K in keyof ColumnRules]: ColumnRules[K] } = {}
  for (const [kind, rule] of Object.entries(value)) {
    if (!KINDS.includes(kind)) {
      invalid(
        `Unknown key ${describeInput(kind)} in ${what.toLowerCase()}: expected read, write or hidden`,
      )
    }
    if (kind === 'hidden') rules.hidden = columnList(rule, `${what}: hidden`)
    else rules[kind as 'read' | 'write'] = roleRules(rule, `${what}: ${kind}`, roles)
  }
  const hidden = rules.hidden ?? []
  if (hidden.length > 0) {
    if (rules.read === undefined || Object.values(rules.read).includes('*')) {
      invalid(
        `${what}: a table with hidden columns must list its readable columns (read, without '*'): keyhole cannot enumerate the other columns`,
      )
    }
    for (const kind of ['read', 'write'] as const) {
      for (const [role, list] of Object.entries(rules[kind] ?? {})) {
        const named = list === '*' ? undefined : list.find((c) => hidden.includes(c))
        if (named !== undefined) {
          invalid(`${what}: the hidden column ${named} is also in ${kind}.${role}`)
        }
      }
    }
  }
  return Object.freeze(rules)
}

// ---------------------------------------------------------------------------------------------
// Enforcement: what a capability may read and write of a table with column rules.

/** The columns of one role, its own and those below it: a set, or every non-hidden column. */
type Level = '*' | ReadonlySet<string>

/** A table's column rules compiled for one role hierarchy (lowest role first). */
interface CompiledRules {
  /** Per role of the hierarchy; undefined without `read` (every non-hidden column). */
  readonly read: readonly Level[] | undefined
  readonly write: readonly Level[] | undefined
  readonly hidden: ReadonlySet<string>
  /**
   * Per role: the table's read guard re-targeted to it, kept to its group conditions (a row's
   * role is the one the capability holds in the row's group; `isSubject` names no group).
   */
  readonly atRole: readonly Guard[]
  /** Whether a row can pass the read guard without being in one of the holder's groups. */
  readonly outsideGroups: boolean
  /** `and(guard, atRole[i])`, by `${guard.id}|${i}`: one guard (one cache key) each. */
  readonly writeGuards: Map<string, Guard>
  /** What `'*'` reads for a system context: every column the rules name when some are hidden. */
  readonly systemList: Returning
}

// Hierarchy → policy → its compiled rules (one hierarchy per keyhole instance, and the system
// handle's empty one).
/**
 * What the column rules read of a table's policy (policies.ts's `TablePolicy` has both), declared
 * here so that policies.ts imports this file and not the other way round.
 */
export interface ColumnPolicy {
  readonly read?: Guard | undefined
  readonly columns?: unknown
}

const compiled = new WeakMap<readonly string[], WeakMap<ColumnPolicy, CompiledRules>>()
/** The system handle knows no hierarchy: it reads and writes every column not hidden. */
const SYSTEM_ROLES: readonly string[] = Object.freeze([])

function levels(
  rules: { readonly [role: string]: ColumnList } | undefined,
  roles: readonly string[],
): Level[] | undefined {
  if (rules === undefined) return undefined
  let level: Level = new Set()
  return roles.map((role) => {
    const list = rules[role]
    if (list === '*') level = '*'
    else if (list !== undefined && list.length > 0 && level !== '*') {
      level = new Set([...level, ...list])
    }
    return level
  })
}

/** The group conditions of `node` at `role`; null when it names no group. */
function retarget(node: GuardNode, role: string): GuardNode | null {
  switch (node.kind) {
    case 'inGroup':
      return { ...node, role }
    case 'viaParent': {
      const parent = retarget(node.parent, role)
      return parent === null ? null : { ...node, parent }
    }
    case 'and':
    case 'or': {
      const guards = node.guards.map((g) => retarget(g, role)).filter((g) => g !== null)
      return guards.length === 0 ? null : { kind: node.kind, guards }
    }
    default:
      return null
  }
}

function namesSubject(node: GuardNode): boolean {
  if (node.kind === 'isSubject') return true
  if (node.kind === 'viaParent') return namesSubject(node.parent)
  if (node.kind === 'and' || node.kind === 'or') return node.guards.some(namesSubject)
  return false
}

function compile(policy: ColumnPolicy, roles: readonly string[]): CompiledRules {
  let byPolicy = compiled.get(roles)
  if (byPolicy === undefined) compiled.set(roles, (byPolicy = new WeakMap()))
  let rules = byPolicy.get(policy)
  if (rules !== undefined) return rules
  const columns = policy.columns as ColumnRules
  const read = policy.read?.node
  const named = new Set<string>()
  for (const kind of ['read', 'write'] as const) {
    for (const list of Object.values(columns[kind] ?? {})) {
      if (list !== '*') for (const c of list) named.add(c)
    }
  }
  const hidden = new Set(columns.hidden ?? [])
  rules = {
    read: levels(columns.read, roles),
    write: levels(columns.write, roles),
    hidden,
    atRole: roles.map((role) => {
      const node = read === undefined ? null : retarget(read, role)
      // No group condition: no row is in one of the holder's groups (admins fold it to TRUE).
      return node === null ? adminOnly() : new Guard(node)
    }),
    outsideGroups: read !== undefined && namesSubject(read),
    writeGuards: new Map(),
    systemList: hidden.size === 0 ? '*' : Object.freeze([...named]),
  }
  byPolicy.set(policy, rules)
  return rules
}

/**
 * Which levels a capability reaches: `base`, the level of every row; `top`, the highest of any
 * row; `flags`, the levels above `base` that depend on the row (evaluated in SQL, per row).
 * Per-row work only where the capability holds the role in some of its groups but not all: an
 * admin, or a role held nowhere, decides without SQL. `everyGroup` is whether a row the statement
 * reaches is known to be in one of the holder's groups (a read whose guard has no `isSubject`).
 */
interface Reach {
  readonly level: readonly Level[]
  readonly base: number
  readonly top: number
  readonly flags: readonly number[]
}

/** No rule: every column that is not hidden, in every row. */
const EVERY: Reach = { level: ['*'], base: 0, top: 0, flags: [] }

function reach(
  level: readonly Level[] | undefined,
  capability: Capability,
  everyGroup: boolean,
): Reach {
  if (level === undefined) return EVERY
  const last = level.length - 1
  if (capability.isAdmin) return { level, base: last, top: last, flags: [] }
  const roles = capability.roles
  const anywhere = capability.groups(roles[0] as string).length
  let base = 0
  let top = 0
  const flags: number[] = []
  for (let i = 1; i <= last; i++) {
    if (level[i] === level[i - 1]) continue
    const held = capability.groups(roles[i] as string).length
    if (held === 0) break // and no higher role either
    top = i
    if (everyGroup && held === anywhere) base = i
    else flags.push(i)
  }
  return { level, base, top, flags }
}

const has = (level: Level | undefined, column: string) =>
  level === '*' || (level !== undefined && level.has(column))

/** The lowest level (≥ `from`) whose columns include `column`. */
function lowest(level: readonly Level[], column: string, from: number): number {
  let i = from
  while (!has(level[i], column)) i++
  return i
}

function denied(table: string, column: string, verb: 'read' | 'write'): never {
  throw new ColumnDenied({ table, column, verb })
}

/** The columns `where` compares (not the labels of guards and `op.or/and/not` groups). */
function whereColumns(where: unknown, out: string[]): void {
  if (where === null || typeof where !== 'object') return
  for (const [key, value] of Object.entries(where)) {
    if (isGuard(value)) continue
    if (isFilter(value) && value.kind !== 'column') {
      for (const inner of value.wheres) whereColumns(inner, out)
    } else out.push(key)
  }
}

/** The columns an insert's values or an update's set name (a key set to `undefined` names none). */
function writtenColumns(values: unknown): string[] {
  const row = Array.isArray(values) ? values[0] : values
  if (row === null || typeof row !== 'object') return []
  return Object.keys(row).filter((key) => (row as Row)[key] !== undefined)
}

/** The `where` key under which the rows' column condition is ANDed in. */
const RULE_KEY = '__keyhole_column_rule'

/** A statement of the request handle on a table with column rules. */
export interface ColumnRequest {
  readonly table: string
  readonly operation: 'select' | 'count' | 'insert' | 'update' | 'delete'
  readonly where?: Where | undefined
  readonly orderBy?: OrderBy | undefined
  /** `columns` of a select, `returning` of a write, as the caller gave it. */
  readonly list?: Returning | undefined
  /** What the list is when the caller gives none. */
  readonly defaultList: Returning
  /** An insert's values or an update's set. */
  readonly values?: unknown
  /** The write guard (insert, update). */
  readonly guard?: Guard | undefined
}

/** The statement as the column rules let it run. */
export interface ColumnAccess {
  /** `where`, with the rows' condition ANDed in when it names columns readable only in some rows. */
  readonly where: Where | undefined
  /** The select list or RETURNING: never `'*'` when keyhole must not name every column. */
  readonly list: Returning
  /** The write guard, with the rows' condition when the values name columns writable in some. */
  readonly guard: Guard | undefined
  /** The per-row flags, when the readable columns depend on the row. */
  readonly view: RowView | undefined
  /** Then: each row (as the statement returned it, flags included) with its readable columns. */
  readonly project: ((row: Row) => Row) | undefined
}

/** The row with only the columns readable at its level (its flags say which). */
function projector({ level, base, flags }: Reach): (row: Row) => Row {
  const names = flags.map((_, i) => flagName(i))
  return (row) => {
    let at = base
    for (let i = flags.length - 1; i >= 0; i--) {
      if (row[names[i] as string] === true) {
        at = flags[i] as number
        break
      }
    }
    const allowed = level[at] as Level
    const out: Row = {}
    for (const key in row) {
      if (!key.startsWith('__keyhole_') && has(allowed, key)) out[key] = row[key]
    }
    return out
  }
}

/**
 * Checks a statement of the request handle against the table's column rules and says how it
 * runs: a column the capability may read (or write) in no row, or a hidden one, is refused with
 * 403 `KH_COLUMN_DENIED` before any SQL; a column readable (writable) only at a higher role than
 * the capability holds in every row restricts the statement to the rows where it is (a condition
 * in SQL: the read guard re-targeted to that role); rows read return only their readable columns.
 *
 * The generated SQL of `select('discussion_threads', { slug: 'x' })` for a member of one group and
 * moderator of another, under `read: { member: ['id', 'title'], moderator: ['slug'] }` (`$1` the
 * moderator's groups, `$3` the member's; the flag says which rows are at moderator), pinned by
 * test/sql/statement-text.test.ts:
 * ```sql
 * SELECT "t"."id", "t"."title", "t"."slug", ("t"."group_id" = ANY ($1::uuid[])) AS "__keyhole_role_0"
 * FROM "discussion_threads" AS "t"
 * WHERE ("t"."slug" = $2 AND "t"."group_id" = ANY ($1::uuid[]) AND "t"."group_id" = ANY ($3::uuid[]))
 * ```
 * @throws ColumnDenied
 */
export function columnAccess(
  policy: ColumnPolicy,
  capability: Capability,
  request: ColumnRequest,
): ColumnAccess {
  const rules = compile(policy, capability.roles)
  const { table } = request
  const reads = request.operation === 'select' || request.operation === 'count'
  const read = reach(rules.read, capability, reads && !rules.outsideGroups)
  const readable = read.level[read.top] as Level

  // Columns the statement filters or orders by: readable, in the rows it reaches.
  const named: string[] = []
  whereColumns(request.where, named)
  if (request.orderBy !== undefined) {
    for (const item of parseOrderBy(request.orderBy).items) named.push(item.column)
  }
  let restrict = read.base
  for (const column of named) {
    if (rules.hidden.has(column) || !has(readable, column)) denied(table, column, 'read')
    restrict = Math.max(restrict, lowest(read.level, column, read.base))
  }
  let where = request.where
  if (restrict > read.base) {
    if (where !== undefined && Object.hasOwn(where, RULE_KEY)) {
      throw new ConfigurationError('KH_INVALID_OPTIONS', `${RULE_KEY} is keyhole's own where key`)
    }
    where = { ...where, [RULE_KEY]: rules.atRole[restrict] as Guard }
  }

  // What it returns: readable columns only, each row its own.
  let list = request.list ?? request.defaultList
  if (Array.isArray(list)) {
    for (const column of list as readonly string[]) {
      if (rules.hidden.has(column) || !has(readable, column)) denied(table, column, 'read')
    }
  } else if (list === '*' && readable !== '*') list = Object.freeze([...readable])
  const perRow = read.flags.length > 0 && list.length > 0
  const view = perRow
    ? { flags: read.flags.map((i) => rules.atRole[i] as Guard), project: keepFlags }
    : undefined

  // What it writes: writable columns only, in the row it writes.
  let guard = request.guard
  const written = writtenColumns(request.values)
  const write = written.length === 0 ? EVERY : reach(rules.write, capability, false)
  let needs = write.base
  for (const column of written) {
    if (rules.hidden.has(column) || !has(write.level[write.top], column)) {
      denied(table, column, 'write')
    }
    needs = Math.max(needs, lowest(write.level, column, write.base))
  }
  if (needs > write.base) {
    // Only inserts and updates name columns to write, and both pass their guard.
    const key = `${(guard as Guard).id}|${needs}`
    let composed = rules.writeGuards.get(key)
    if (composed === undefined) {
      composed = and(guard as Guard, rules.atRole[needs] as Guard)
      rules.writeGuards.set(key, composed)
    }
    guard = composed
  }
  return { where, list, guard, view, project: perRow ? projector(read) : undefined }
}

/**
 * A system context's statement on a table with column rules: it may name every column but the
 * hidden ones (403 `KH_COLUMN_DENIED`, before any SQL), and its `'*'` (select list, RETURNING)
 * names the columns the rules list when the table has hidden ones.
 * @throws ColumnDenied
 */
export function systemList(
  policy: ColumnPolicy,
  table: string,
  request: Omit<ColumnRequest, 'table' | 'operation' | 'defaultList' | 'guard'> & {
    readonly list: Returning
  },
): Returning {
  const rules = compile(policy, SYSTEM_ROLES)
  const named: string[] = []
  whereColumns(request.where, named)
  if (request.orderBy !== undefined) {
    for (const item of parseOrderBy(request.orderBy).items) named.push(item.column)
  }
  if (request.list !== '*' && Array.isArray(request.list)) named.push(...request.list)
  for (const column of named) if (rules.hidden.has(column)) denied(table, column, 'read')
  if (request.values !== undefined) {
    for (const column of writtenColumns(request.values)) {
      if (rules.hidden.has(column)) denied(table, column, 'write')
    }
  }
  return request.list === '*' ? rules.systemList : request.list
}

/** What a statement resolves to: rows, one row, an insert's result, an update's or delete's. */
type ResultShape = 'rows' | 'row' | 'inserted' | 'written'

/**
 * The statement's result with each row projected by {@link ColumnAccess.project}; the pending
 * result itself when there is nothing to project.
 */
export function projected<T>(
  pending: Promise<T>,
  project: ((row: Row) => Row) | undefined,
  shape: ResultShape,
): Promise<T> {
  if (project === undefined) return pending
  return pending.then((result) => {
    const r = result as never as Row & { rows: Row[]; inserted: Row[] }
    if (shape === 'rows') return (result as Row[]).map(project) as T
    if (shape === 'row') return project(r) as T
    if (shape === 'inserted') return { ...r, inserted: r.inserted.map(project) } as T
    return { ...r, rows: r.rows.map(project) } as T
  })
}
