/**
 * keyhole's guarded statements over tables with encrypted columns: values are sealed before they
 * reach SQL and opened in the rows that come back; `where` lookups on an encrypted column become
 * lookups on its blind index, and what ciphertext cannot answer (a range, LIKE, an order, an
 * equality without a blind index) is refused before any SQL. The request handle and the system
 * handle both call their statements through here; a table without `encrypted` goes straight to
 * the plain statement.
 */
import type { Capability } from '../capability/capability.ts'
import { ConfigurationError } from '../errors.ts'
import { isFilter, likePrefix, op, type Filter } from '../sql/filter.ts'
import { isGuard } from '../sql/guard.ts'
import { guardedCount, type GuardedCountOptions } from '../sql/guarded-count.ts'
import { guardedDelete, type GuardedDeleteOptions } from '../sql/guarded-delete.ts'
import { guardedInsert, type GuardedInsertOptions } from '../sql/guarded-insert.ts'
import { guardedSelect, type GuardedSelectOptions } from '../sql/guarded-select.ts'
import { guardedUpdate, type GuardedUpdateOptions } from '../sql/guarded-update.ts'
import type { Queryable, Row } from '../sql/queryable.ts'
import type { Returning } from '../sql/run-statement.ts'
import type { Where } from '../sql/where.ts'
import { blindIndex, canonicalRowKey, open, rowKeyText, seal, type ValueSite } from './cipher.ts'
import { keyRing, type DataKeys, type KeyRing } from './data-keys.ts'
import type { EncryptedTable } from './encrypted-columns.ts'

/** The five guarded statements, as the handles call them. */
export interface GuardedStatements {
  insert(db: Queryable, capability: Capability, options: GuardedInsertOptions): Promise<unknown>
  select(db: Queryable, capability: Capability, options: GuardedSelectOptions): Promise<Row[]>
  count(db: Queryable, capability: Capability, options: GuardedCountOptions): Promise<number>
  update(db: Queryable, capability: Capability, options: GuardedUpdateOptions): Promise<unknown>
  delete(db: Queryable, capability: Capability, options: GuardedDeleteOptions): Promise<unknown>
}

// One signature for both of guardedInsert's overloads (one row, several).
const insertAny = guardedInsert as (
  db: Queryable,
  capability: Capability,
  options: GuardedInsertOptions,
) => Promise<unknown>

/** The statements of tables without encrypted columns. */
export const plainStatements: GuardedStatements = Object.freeze({
  insert: insertAny,
  select: guardedSelect,
  count: guardedCount,
  update: guardedUpdate,
  delete: guardedDelete,
})

/** One table's encrypted columns, ready for the hot path. */
interface Sealed {
  readonly table: string
  readonly rowKey: string
  /** Encrypted column → its site and blind-index column. */
  readonly columns: ReadonlyMap<string, { site: ValueSite; blindIndex: string | undefined }>
  /** Blind-index column → the encrypted column it indexes. */
  readonly indexes: ReadonlyMap<string, string>
}

/** What the policies' tables carry (structural: this folder does not import policies.ts). */
export type EncryptedTables = { readonly [table: string]: { readonly encrypted?: EncryptedTable } }

function refused(table: string, message: string): ConfigurationError {
  return new ConfigurationError('KH_ENCRYPTED_COLUMN', `${table}: ${message}`)
}

/** Filters keyhole itself builds (re-encryption's "sealed with another key"): passed as they are. */
const ownFilters = new WeakSet<Filter>()

/** True when the policies declare an encrypted column on any table. */
export function declaresEncryption(tables: EncryptedTables): boolean {
  return Object.values(tables).some((policy) => policy.encrypted !== undefined)
}

function sealedTables(tables: EncryptedTables): Map<string, Sealed> {
  const sealed = new Map<string, Sealed>()
  for (const [table, policy] of Object.entries(tables)) {
    if (policy.encrypted === undefined) continue
    const columns = new Map<string, { site: ValueSite; blindIndex: string | undefined }>()
    const indexes = new Map<string, string>()
    for (const { column, blindIndex } of policy.encrypted.columns) {
      columns.set(column, { site: Object.freeze({ table, column }), blindIndex })
      if (blindIndex !== undefined) indexes.set(blindIndex, column)
    }
    sealed.set(table, { table, rowKey: policy.encrypted.rowKey, columns, indexes })
  }
  return sealed
}

/** A list of columns with the row key added when it names an encrypted column without it. */
function withRowKey(
  list: Returning | undefined,
  t: Sealed,
): { list: Returning | undefined; drop: boolean } {
  if (!Array.isArray(list) || list.includes(t.rowKey) || !list.some((c) => t.columns.has(c))) {
    return { list, drop: false }
  }
  return { list: [...list, t.rowKey], drop: true }
}

function openRows(rows: readonly Row[], t: Sealed, ring: KeyRing, drop: boolean): void {
  for (const row of rows) {
    let rowKey: string | undefined
    for (const [column, { site }] of t.columns) {
      const value = row[column]
      if (value === null || value === undefined) continue
      // No row key (NULL): '' was never sealed with, so the value fails to open.
      rowKey ??= canonicalRowKey(row[t.rowKey]) ?? ''
      row[column] = open(ring, site, rowKey, value)
    }
    if (drop) delete row[t.rowKey]
  }
}

/** A write's result with its rows opened: `rows` (update, delete), `inserted`, or the row itself. */
function openResult(
  result: unknown,
  rowsOf: (result: never) => Row[],
  t: Sealed,
  ring: KeyRing,
  drop: boolean,
): unknown {
  openRows(rowsOf(result as never), t, ring, drop)
  return result
}
const writtenRows = (result: { rows: Row[] }) => result.rows

function plaintext(value: unknown, t: Sealed, column: string): string {
  if (typeof value !== 'string') {
    throw refused(t.table, `${column} is encrypted: its values must be strings (text)`)
  }
  return value
}

/** Every blind index `value` may be stored under: one per key still read. */
function indexesOf(value: unknown, t: Sealed, column: string, ring: KeyRing): string[] {
  const text = plaintext(value, t, column)
  const site = (t.columns.get(column) as { site: ValueSite }).site
  return ring.all.map((entry) => blindIndex(entry, site, text))
}

/** An equality on an encrypted column, as a condition on its blind index. */
function lookup(value: unknown, t: Sealed, column: string, ring: KeyRing): unknown {
  const indexes = indexesOf(value, t, column, ring)
  return indexes.length === 1 ? indexes[0] : op({ in: indexes })
}

function filterLookup(filter: Filter, t: Sealed, column: string, ring: KeyRing): unknown {
  const [only, ...more] = filter.comparisons
  const c = only as (typeof filter.comparisons)[number]
  if (!c.bound && more.length === 0) return undefined // IS [NOT] NULL reads the column itself
  if (more.length === 0 && (c.operator === 'eq' || c.operator === 'in')) {
    const values = c.operator === 'eq' ? [c.value] : (c.value as unknown[])
    return op({ in: values.flatMap((v) => indexesOf(v, t, column, ring)) })
  }
  if (more.length === 0 && (c.operator === 'ne' || c.operator === 'notIn')) {
    const values = c.operator === 'ne' ? [c.value] : (c.value as unknown[])
    return op({ notIn: values.flatMap((v) => indexesOf(v, t, column, ring)) })
  }
  throw refused(
    t.table,
    `${column} is encrypted: only one equality (eq, ne, in, notIn) or null test at a time, never a range or LIKE`,
  )
}

/** `where` with lookups on encrypted columns moved to their blind indexes; itself if none. */
function rewriteWhere(where: Where | undefined, t: Sealed, ring: KeyRing): Where | undefined {
  if (where === null || typeof where !== 'object') return where
  let out: Record<string, unknown> | undefined
  const keys = Object.keys(where)
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string
    const value = where[key]
    let next: [string, unknown] | undefined
    if (isGuard(value) || (isFilter(value) && ownFilters.has(value))) {
      // a guard fragment, or keyhole's own filter: as it is
    } else if (isFilter(value) && value.kind !== 'column') {
      const wheres = value.wheres.map((w) => rewriteWhere(w as Where, t, ring) as Where)
      if (wheres.some((w, j) => w !== value.wheres[j]))
        next = [key, value.kind === 'not' ? op.not(wheres[0] as Where) : op[value.kind](...wheres)]
    } else if (t.indexes.has(key)) {
      throw refused(
        t.table,
        `${key} is the blind index of ${t.indexes.get(key)}: look that up instead`,
      )
    } else if (t.columns.has(key) && value !== null) {
      const index = (t.columns.get(key) as { blindIndex: string | undefined }).blindIndex
      if (index === undefined) {
        throw refused(
          t.table,
          `${key} is encrypted without a blind index: it cannot be looked up (declare { column: '${key}', blindIndex: '<column>' })`,
        )
      }
      const condition = isFilter(value)
        ? filterLookup(value, t, key, ring)
        : lookup(value, t, key, ring)
      if (condition !== undefined) next = [index, condition]
    }
    if (next !== undefined && out === undefined) {
      out = {}
      for (const before of keys.slice(0, i)) out[before] = where[before]
    }
    if (out !== undefined) {
      const [k, v] = next ?? [key, value]
      out[k] = v
    }
  }
  return (out as Where | undefined) ?? where
}

function assertOrder(orderBy: unknown, t: Sealed): void {
  const items = typeof orderBy === 'string' ? [orderBy] : Array.isArray(orderBy) ? orderBy : []
  for (const item of items) {
    const column: unknown = Array.isArray(item) ? item[0] : item
    if (t.columns.has(column as string) || t.indexes.has(column as string)) {
      throw refused(t.table, `${String(column)} is encrypted: rows cannot be ordered by it`)
    }
  }
}

/** `values` (an insert's row, an update's set) with encrypted columns sealed; refuses what it must. */
function sealRow(values: Row, t: Sealed, ring: KeyRing, rowKey: () => string): Row {
  let out: Row | undefined
  for (const [column, { site, blindIndex: index }] of t.columns) {
    const value = values[column]
    if (value === undefined) continue
    out ??= { ...values }
    if (value === null) {
      if (index !== undefined) out[index] = null
      continue
    }
    const text = plaintext(value, t, column)
    out[column] = seal(ring, site, rowKey(), text)
    if (index !== undefined) out[index] = blindIndex(ring.current, site, text)
  }
  for (const index of t.indexes.keys()) {
    if (values[index] !== undefined) {
      throw refused(
        t.table,
        `${index} is the blind index of ${t.indexes.get(index)}: keyhole writes it`,
      )
    }
  }
  return out ?? values
}

function isRow(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The encrypting layer over one set of policies and keys. */
interface Layer {
  readonly tables: ReadonlyMap<string, Sealed>
  readonly ring: KeyRing
}

const handles = new WeakMap<object, Layer>()

/** The statements of a set of policies; `layer` when they encrypt. */
export type EncryptingStatements = GuardedStatements & { readonly layer?: Layer }

/** Per policies' tables: null when nothing is encrypted, else the statements per data keys. */
const built = new WeakMap<object, WeakMap<DataKeys, EncryptingStatements> | null>()

/**
 * The statements for `tables`: the plain ones when no table declares encrypted columns, else ones
 * that seal, open and refuse for the tables that do.
 * @throws ConfigurationError `KH_DATA_KEY_MISSING` when a table declares encrypted columns and
 * `keys` is undefined
 */
export function encryptedStatements(
  tables: EncryptedTables,
  keys: DataKeys | undefined,
): EncryptingStatements {
  let byKeys = built.get(tables)
  if (byKeys === undefined) {
    byKeys = declaresEncryption(tables) ? new WeakMap() : null
    built.set(tables, byKeys)
  }
  if (byKeys === null) return plainStatements
  if (keys === undefined) {
    throw new ConfigurationError(
      'KH_DATA_KEY_MISSING',
      'The policies declare encrypted columns: give the data keys (KEYHOLE_DATA_KEY, or the dataKeys option)',
    )
  }
  const known = byKeys.get(keys)
  if (known !== undefined) return known
  const statements = build({ tables: sealedTables(tables), ring: keyRing(keys) })
  byKeys.set(keys, statements)
  return statements
}

function build(layer: Layer): EncryptingStatements {
  const { ring } = layer
  const find = (table: string) => layer.tables.get(table)
  return {
    layer,
    async insert(db, capability, options) {
      const t = find(options.into)
      if (t === undefined) return insertAny(db, capability, options)
      const sealOne = (row: Row) =>
        isRow(row)
          ? sealRow(row, t, ring, () => {
              const key = row[t.rowKey]
              if (key === undefined || key === null) {
                throw refused(
                  t.table,
                  `an insert that sets an encrypted column must give the row key ${t.rowKey} (it is bound into each value)`,
                )
              }
              return rowKeyText(key, { table: t.table, column: t.rowKey }, t.rowKey)
            })
          : row
      const values = Array.isArray(options.values)
        ? (options.values as Row[]).map(sealOne)
        : sealOne(options.values as Row)
      const { list, drop } = withRowKey(options.returning, t)
      const result = await insertAny(db, capability, { ...options, values, returning: list })
      // One row comes back as the row ({} when it returns nothing), several as an InsertResult.
      const returns = list === undefined || list === '*' || list.length > 0
      const rowsOf = Array.isArray(values)
        ? (r: { inserted: Row[] }) => r.inserted
        : (row: Row) => (returns ? [row] : [])
      return openResult(result, rowsOf, t, ring, drop)
    },
    async select(db, capability, options) {
      const t = find(options.from)
      if (t === undefined) return guardedSelect(db, capability, options)
      assertOrder(options.orderBy, t)
      const { list, drop } = withRowKey(options.columns, t)
      const rows = await guardedSelect(db, capability, {
        ...options,
        where: rewriteWhere(options.where, t, ring),
        columns: list,
      })
      openRows(rows, t, ring, drop)
      return rows
    },
    async count(db, capability, options) {
      const t = find(options.from)
      if (t === undefined) return guardedCount(db, capability, options)
      return guardedCount(db, capability, {
        ...options,
        where: rewriteWhere(options.where, t, ring),
      })
    },
    async update(db, capability, options) {
      const t = find(options.table)
      if (t === undefined) return guardedUpdate(db, capability, options)
      const set = isRow(options.set) ? options.set : {}
      if (set[t.rowKey] !== undefined) {
        throw refused(
          t.table,
          `the row key ${t.rowKey} is bound into the encrypted values: it cannot be updated`,
        )
      }
      const sealed = sealRow(set, t, ring, () => {
        const pinned = isRow(options.where) ? options.where[t.rowKey] : undefined
        if (
          pinned === undefined ||
          pinned === null ||
          typeof pinned === 'object' ||
          typeof pinned === 'boolean'
        ) {
          throw refused(
            t.table,
            `an update of an encrypted column must pin the row key in where ({ ${t.rowKey}: value })`,
          )
        }
        return rowKeyText(pinned, { table: t.table, column: t.rowKey }, t.rowKey)
      })
      const { list, drop } = withRowKey(options.returning, t)
      const result = await guardedUpdate(db, capability, {
        ...options,
        where: rewriteWhere(options.where, t, ring) as Where,
        set: sealed === set ? options.set : sealed,
        returning: list,
      })
      return openResult(result, writtenRows, t, ring, drop)
    },
    async delete(db, capability, options) {
      const t = find(options.from)
      if (t === undefined) return guardedDelete(db, capability, options)
      const { list, drop } = withRowKey(options.returning, t)
      const result = await guardedDelete(db, capability, {
        ...options,
        where: rewriteWhere(options.where, t, ring) as Where,
        returning: list,
      })
      return openResult(result, writtenRows, t, ring, drop)
    },
  }
}

/** Records the layer behind a handle, for {@link layerOf} (re-encryption). */
export function registerHandle(handle: object, statements: EncryptingStatements): void {
  if (statements.layer !== undefined) handles.set(handle, statements.layer)
}

/** The encrypting layer behind a handle, or undefined. */
export function layerOf(handle: object): Layer | undefined {
  return handles.get(handle)
}

/**
 * `where` for the rows with a value of `t`'s encrypted columns sealed with a key other than the
 * current one (re-encryption), as keyhole's own filter (passed through, never refused):
 * ```sql
 * (("t"."c" IS NOT NULL AND NOT ("t"."c" LIKE 'kh1.<current>.%')) OR …)
 * ```
 */
export function sealedWithOtherKey(layer: Layer, table: string): Where {
  const t = layer.tables.get(table) as Sealed
  const current = likePrefix(`kh1.${layer.ring.current.id}.`)
  const filter = op.or(
    ...[...t.columns.keys()].map((column) => ({
      stale: op.and(
        { [column]: op({ isNull: false }) },
        { other: op.not({ [column]: op({ like: current }) }) },
      ),
    })),
  )
  ownFilters.add(filter)
  return { stale: filter }
}

export type { Layer }
