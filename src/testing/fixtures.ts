/**
 * Fixture rows generated from the policies. Each guard names the columns that decide access, and
 * so the rows it needs: `inGroup(column)` a row whose column holds group A (or B), `isSubject`
 * one owned by the caller and one owned by someone else, `viaParent` a parent row that passes the
 * parent's guard (created the same way, level by level). Every other NOT NULL column without a
 * default gets a value of its type, a foreign key the parent row it needs; the application's
 * `rows` override any of them. Rows are inserted as the administrator (row-level security does
 * not apply to it) and stay for the whole test; every probe runs in a transaction rolled back.
 */
import { randomUUID } from 'node:crypto'
import { ConfigurationError } from '../errors.ts'
import type { Guard } from '../sql/guard.ts'
import type { Policies, PolicyOperation } from '../sql/policies.ts'
import type { Row } from '../sql/queryable.ts'
import { readTable, type ColumnInfo, type TableInfo } from './catalogue.ts'
import type { AdminClient } from './scratch-database.ts'

const OPERATIONS: readonly PolicyOperation[] = ['read', 'insert', 'update', 'delete']

/** The two groups every test has. */
export type GroupName = 'A' | 'B'
export const GROUP_NAMES: readonly GroupName[] = ['A', 'B']

/** Whose row: the caller's (its subject in the `isSubject` columns) or someone else's. */
export type Owner = 'caller' | 'other'

type GuardNode = Guard['node']

/** What decides a column's value in a fixture row. */
type Constraint =
  | { readonly kind: 'group' }
  | { readonly kind: 'owner' }
  | {
      readonly kind: 'parent'
      readonly table: string
      readonly key: string
      readonly node: GuardNode
    }
  | { readonly kind: 'value'; readonly value: unknown }

type Constraints = ReadonlyMap<string, Constraint>

/** What a `rows` callback is told about the row it completes. */
export interface RowContext {
  /** The group the row belongs to (undefined for a row no guard reads, e.g. a parent's parent). */
  readonly group: GroupName | undefined
  /** That group's ID. */
  readonly groupId: string | undefined
  /** The subject in the row's `isSubject` columns, when its guards name one. */
  readonly owner: string | undefined
  /** True for a row an `insert` probe will insert (not yet in the database). */
  readonly probe: boolean
}

/** Column values for a table's rows: fixed, or computed per row. They win over generated ones. */
export type RowOverride = Row | ((context: RowContext) => Row)

export interface FixtureOptions {
  readonly groupIds: Readonly<Record<GroupName, string>>
  readonly subjects: Readonly<Record<Owner, string>>
  readonly rows: Readonly<Record<string, RowOverride>>
}

/** One fixture row with what it was made for. */
export interface FixtureRow {
  readonly group: GroupName
  readonly owner: Owner | undefined
  readonly row: Row
}

/** A policy table's fixtures and what the probes need to know of it. */
export interface TableFixtures {
  /** The table as the policies name it. */
  readonly name: string
  readonly info: TableInfo
  /** The rows of each group (one per owner when the guards name a subject column). */
  readonly rows: Readonly<Record<GroupName, readonly FixtureRow[]>>
  /** The rows an insert probe inserts into each group; undefined when it cannot (see docs). */
  readonly inserts: Readonly<Record<GroupName, readonly Row[]>> | undefined
  /** The columns that place a row in its group (group columns and parent links). */
  readonly placement: readonly string[]
}

const unquote = (quoted: string) => quoted.slice(1, -1)

/** A column name as SQL (names from the catalogue or the application's `rows`). */
export const ident = (name: string) => `"${name.replace(/"/g, '""')}"`

/** The columns a guard decides, and how. */
export function constraintsOf(node: GuardNode, into = new Map<string, Constraint>()) {
  switch (node.kind) {
    case 'inGroup':
      into.set(unquote(node.column), { kind: 'group' })
      break
    case 'isSubject':
      into.set(unquote(node.column), { kind: 'owner' })
      break
    case 'viaParent':
      into.set(unquote(node.column), {
        kind: 'parent',
        table: node.table.sql,
        key: unquote(node.key),
        node: node.parent,
      })
      break
    case 'and':
    case 'or':
      for (const child of node.guards) constraintsOf(child, into)
      break
    default:
      // adminOnly decides no column.
      break
  }
  return into
}

function namesOwner(constraints: Constraints): boolean {
  return [...constraints.values()].some(
    (c) => c.kind === 'owner' || (c.kind === 'parent' && namesOwner(constraintsOf(c.node))),
  )
}

const EPOCH = Date.UTC(2000, 0, 1)

/** A value of the column's type, distinct per `n` where the type allows it. */
function generatedValue(column: ColumnInfo, n: number): unknown {
  if (column.category === 'A') return []
  if (column.category === 'E') return column.labels[0]
  switch (column.base) {
    case 'uuid':
      return randomUUID()
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'name':
    case 'citext':
      return `v${n}`
    case 'int2':
    case 'int4':
    case 'int8':
    case 'numeric':
    case 'float4':
    case 'float8':
      return n
    case 'bool':
      return false
    case 'date':
      return '2000-01-01'
    case 'timestamp':
    case 'timestamptz':
      return new Date(EPOCH + n * 1000)
    case 'json':
    case 'jsonb':
      return {}
    case 'bytea':
      return Buffer.from([n % 256])
    default:
      return undefined
  }
}

/** Creates fixture rows on the administrator's connection. */
export class FixtureGenerator {
  readonly #admin: AdminClient
  readonly #options: FixtureOptions
  readonly #infos = new Map<string, Promise<TableInfo>>()
  readonly #created = new Map<string, Promise<Row>>()
  /** The rows being created: one needed again before it exists is a circle. */
  readonly #pending = new Set<string>()
  /** Policy table SQL → its name in the policies and its constraints. */
  readonly #policyTables = new Map<string, { name: string; constraints: Constraints }>()
  #counter = 0

  constructor(admin: AdminClient, options: FixtureOptions) {
    this.#admin = admin
    this.#options = options
  }

  info(table: string): Promise<TableInfo> {
    let info = this.#infos.get(table)
    if (info === undefined) {
      info = readTable(this.#admin, table)
      this.#infos.set(table, info)
    }
    return info
  }

  /** Generates the fixtures of every table of `policies`, in their order. */
  async generate(policies: Policies, quoted: (table: string) => string): Promise<TableFixtures[]> {
    const tables: {
      name: string
      info: TableInfo
      constraints: Constraints
      policy: Policies['tables'][string]
    }[] = []
    for (const [name, policy] of Object.entries(policies.tables)) {
      const info = await this.info(quoted(name))
      const constraints = new Map<string, Constraint>()
      // The guards of the four operations (a table's \`system\` list names no column).
      for (const operation of OPERATIONS) {
        const guard = policy[operation]
        if (guard !== undefined) constraintsOf(guard.node, constraints)
      }
      this.#policyTables.set(info.sql, { name, constraints })
      tables.push({ name, info, constraints, policy })
    }
    const fixtures: TableFixtures[] = []
    for (const { name, info, constraints, policy } of tables) {
      if (info.primaryKey.length === 0) {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          `keyhole/testing needs a primary key on ${name} to tell its rows apart`,
        )
      }
      const owners: (Owner | undefined)[] = namesOwner(constraints)
        ? ['caller', 'other']
        : [undefined]
      const rows = { A: [] as FixtureRow[], B: [] as FixtureRow[] }
      const inserts = { A: [] as Row[], B: [] as Row[] }
      const insertGuard = (policy as { [op in PolicyOperation]?: Guard }).insert
      const insertDecides = insertGuard === undefined ? new Map() : constraintsOf(insertGuard.node)
      // A probe row cannot be placed in a group by a unique column (the group's own row has it).
      const insertable = ![...insertDecides.keys()].some((c) => info.unique.has(c))
      const probeConstraints = new Map(
        [...constraints].filter(
          ([column]) =>
            insertDecides.has(column) ||
            !info.unique.has(column) ||
            !info.columns.some((c) => c.name === column && c.defaulted),
        ),
      )
      for (const group of GROUP_NAMES) {
        for (const owner of owners) {
          const row = await this.#create(info.sql, constraints, group, owner)
          rows[group].push({ group, owner, row })
          if (insertable) {
            inserts[group].push(await this.#plan(info.sql, probeConstraints, group, owner, true))
          }
        }
      }
      const placement = [...constraints]
        .filter(([, c]) => c.kind === 'group' || c.kind === 'parent')
        .map(([column]) => column)
      fixtures.push({ name, info, rows, inserts: insertable ? inserts : undefined, placement })
    }
    return fixtures
  }

  #override(table: string, context: RowContext): Row {
    const name = this.#policyTables.get(table)?.name
    const override =
      (name !== undefined && Object.hasOwn(this.#options.rows, name)
        ? this.#options.rows[name]
        : undefined) ??
      (Object.hasOwn(this.#options.rows, table) ? this.#options.rows[table] : undefined)
    if (override === undefined) return {}
    return typeof override === 'function' ? override(context) : override
  }

  async #resolve(
    constraint: Constraint,
    group: GroupName | undefined,
    owner: Owner | undefined,
  ): Promise<unknown> {
    switch (constraint.kind) {
      case 'group':
        return this.#options.groupIds[group as GroupName]
      case 'owner':
        return this.#options.subjects[owner as Owner]
      case 'parent': {
        const parent = await this.#create(
          constraint.table,
          constraintsOf(constraint.node),
          group,
          owner,
        )
        return parent[constraint.key]
      }
      default:
        return constraint.value
    }
  }

  /** The values of a row of `table` (creating the rows it refers to), not inserted. */
  async #plan(
    table: string,
    constraints: Constraints,
    group: GroupName | undefined,
    owner: Owner | undefined,
    probe: boolean,
  ): Promise<Row> {
    const info = await this.info(table)
    const values: Row = {}
    for (const [column, constraint] of constraints) {
      values[column] = await this.#resolve(constraint, group, owner)
    }
    const override = this.#override(table, {
      group,
      groupId: group === undefined ? undefined : this.#options.groupIds[group],
      owner: owner === undefined ? undefined : this.#options.subjects[owner],
      probe,
    })
    for (const column of info.columns) {
      if (column.generated || Object.hasOwn(override, column.name)) continue
      const fk = info.foreignKeys.find((f) => f.column === column.name)
      if (Object.hasOwn(values, column.name)) {
        if (fk !== undefined) await this.#ensureReferenced(fk.table, fk.key, values[column.name])
        continue
      }
      if (!column.notNull || column.defaulted) continue
      if (fk !== undefined) {
        const policy = this.#policyTables.get(fk.table)
        const parent =
          policy === undefined
            ? await this.#create(fk.table, new Map(), undefined, undefined)
            : await this.#create(
                fk.table,
                policy.constraints,
                group,
                namesOwner(policy.constraints) ? (owner ?? 'caller') : undefined,
              )
        values[column.name] = parent[fk.key]
        continue
      }
      const value = generatedValue(column, ++this.#counter)
      if (value === undefined) {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          `keyhole/testing cannot generate a value for ${table}.${column.name} (${column.type}): give it in rows`,
        )
      }
      values[column.name] = value
    }
    return { ...values, ...override }
  }

  async #ensureReferenced(table: string, key: string, value: unknown) {
    const found = await this.#admin.query(
      `SELECT 1 FROM ${table} WHERE ${ident(key)} = $1 LIMIT 1`,
      [value],
    )
    if (found.rows.length > 0) return
    await this.#create(table, new Map([[key, { kind: 'value', value }]]), undefined, undefined)
  }

  /** Creates (once) a row of `table` that satisfies `constraints` for `group` and `owner`. */
  #create(
    table: string,
    constraints: Constraints,
    group: GroupName | undefined,
    owner: Owner | undefined,
  ): Promise<Row> {
    const key = JSON.stringify([table, group, owner, [...constraints]])
    if (this.#pending.has(key)) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `keyhole/testing: the rows of ${table} refer to each other in a circle: give them in rows`,
      )
    }
    let row = this.#created.get(key)
    if (row === undefined) {
      this.#pending.add(key)
      row = this.#insert(table, constraints, group, owner).finally(() => this.#pending.delete(key))
      this.#created.set(key, row)
    }
    return row
  }

  async #insert(
    table: string,
    constraints: Constraints,
    group: GroupName | undefined,
    owner: Owner | undefined,
  ): Promise<Row> {
    const info = await this.info(table)
    const values = await this.#plan(table, constraints, group, owner, false)
    // A row already there with a unique value this row must have (a group's own row, created
    // earlier as the parent another row refers to) is that row.
    for (const column of Object.keys(values)) {
      if (!info.unique.has(column) || !constraints.has(column)) continue
      const existing = await this.#admin.query(
        `SELECT * FROM ${table} WHERE ${ident(column)} = $1`,
        [values[column]],
      )
      if (existing.rows.length > 0) return existing.rows[0] as Row
    }
    const columns = Object.keys(values)
    try {
      const inserted = await this.#admin.query(
        `INSERT INTO ${table} (${columns.map(ident).join(', ')}) ` +
          `VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING *`,
        columns.map((c) => values[c]),
      )
      return inserted.rows[0] as Row
    } catch (error) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `keyhole/testing could not insert a fixture row into ${table} (${(error as Error).message}): give the values it needs in rows`,
        error,
      )
    }
  }
}
