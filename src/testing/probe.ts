/**
 * The probes: every operation of every caller on every policy table, through both layers, each
 * write in a savepoint rolled back so every probe sees the same fixtures.
 * - guard: keyhole's guarded statements (`bindPolicies`), on the administrator's connection, where
 *   row-level security does not apply: the guard alone decides.
 * - rls: plain SQL as the runtime role, the capability signed into the transaction as a request's
 *   session sets it (nobody: none set): the forced policies alone decide.
 * A write over a group's rows runs one statement per row, so the outcome counts how many of them
 * the layer let through: all, some or none.
 */
import { randomBytes } from 'node:crypto'
import { createCapabilitySigner } from '../db/sign-capability.ts'
import { isKeyholeError } from '../errors.ts'
import { dataKeys } from '../encryption/data-keys.ts'
import type { ColumnRules } from '../sql/column-rules.ts'
import { bindPolicies, type PolicyHandle, type Policies } from '../sql/policies.ts'
import type { QueryConfig, Row } from '../sql/queryable.ts'
import type { Where } from '../sql/where.ts'
import type { Caller } from './callers.ts'
import { ident, type FixtureRow, type GroupName, type TableFixtures } from './fixtures.ts'
import type { AdminClient } from './scratch-database.ts'

/** An operation on a table's rows in group A or B; `move` changes a row's group. */
export type AccessOperation =
  | 'read A'
  | 'read B'
  | 'insert A'
  | 'insert B'
  | 'update A'
  | 'update B'
  | 'move A to B'
  | 'move B to A'
  | 'delete A'
  | 'delete B'

export const OPERATIONS: readonly AccessOperation[] = [
  'read A',
  'read B',
  'insert A',
  'insert B',
  'update A',
  'update B',
  'move A to B',
  'move B to A',
  'delete A',
  'delete B',
]

/** How much of an operation went through: every row, some, none. */
export type Access = 'all' | 'some' | 'none'

/** What one layer did: `error` when a statement failed for another reason than a denial. */
export type LayerOutcome = Access | 'error' | 'n/a'

/** One statement a probe ran, and whether the layer let its row through. */
export interface ProbeStatement {
  readonly sql: string
  readonly allowed: boolean
  /** The error's code and message when it failed. */
  readonly error?: string | undefined
  /** A refusal by the table's column rules (`KH_COLUMN_DENIED` and its message): a denial. */
  readonly refused?: string | undefined
}

export interface LayerResult {
  readonly outcome: LayerOutcome
  /** Rows let through, of how many. */
  readonly allowed: number
  readonly of: number
  readonly statements: readonly ProbeStatement[]
}

export interface Observation {
  readonly table: string
  readonly caller: string
  readonly operation: AccessOperation
  readonly guard: LayerResult
  readonly rls: LayerResult
}

/** One layer's statements for one caller, in a transaction rolled back at the end. */
interface Layer {
  /** The keys of the rows the caller reads. */
  read(table: TableFixtures): Promise<{ keys: Set<string>; statement: ProbeStatement }>
  insert(table: TableFixtures, values: Row): Promise<ProbeStatement>
  update(table: TableFixtures, row: Row, set: Row): Promise<ProbeStatement>
  delete(table: TableFixtures, row: Row): Promise<ProbeStatement>
}

// KH_COLUMN_DENIED: the column rules refuse a column the statement names (the write the caller
// may not make is refused, as the row guard refuses a row).
const DENIED = new Set(['KH_CAPABILITY_DENIED', 'KH_NOT_FOUND', 'KH_NO_POLICY', 'KH_COLUMN_DENIED'])
// insufficient_privilege: a row-level security violation, or a missing grant.
const RLS_DENIED = '42501'

function describeError(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown }
  return [e.code, e.message].filter(Boolean).join(': ')
}

const keyOf = (table: TableFixtures, row: Row) =>
  table.info.primaryKey.map((c) => String(row[c])).join('\u0000')

const whereKey = (table: TableFixtures, row: Row) =>
  Object.fromEntries(table.info.primaryKey.map((c) => [c, row[c]])) as Where

const uniqueOf = (table: TableFixtures, values: Row) =>
  Object.keys(values).filter((c) => table.info.unique.has(c))

/** Runs `work` in a savepoint rolled back; a denial (as `denied` tells) is not an error. */
async function inSavepoint(
  db: AdminClient,
  work: () => Promise<boolean>,
  sql: () => string,
  denied: (error: unknown) => boolean,
): Promise<ProbeStatement> {
  await db.query('SAVEPOINT keyhole_probe')
  let statement: ProbeStatement
  try {
    statement = { allowed: await work(), sql: sql() }
  } catch (error) {
    statement = {
      allowed: false,
      sql: sql(),
      error: denied(error) ? undefined : describeError(error),
      refused:
        isKeyholeError(error) && error.code === 'KH_COLUMN_DENIED'
          ? describeError(error)
          : undefined,
    }
  }
  await db.query('ROLLBACK TO SAVEPOINT keyhole_probe')
  return statement
}

const throwawayKeys = dataKeys({ current: randomBytes(32) })

/** keyhole's guarded statements on the administrator's connection, the SQL they ran recorded. */
function guardLayer(admin: AdminClient, policies: Policies, caller: Caller): Layer {
  let last = ''
  const recorder = {
    query(config: QueryConfig) {
      last = config.text
      return admin.query(config as unknown as string)
    },
  }
  // A throwaway data key for encrypted columns: every probe is rolled back, and reads name only
  // the primary key.
  const db: PolicyHandle = bindPolicies(policies, recorder, caller.guardCapability, {
    dataKeys: throwawayKeys,
  })
  const denied = (error: unknown) => isKeyholeError(error) && DENIED.has(error.code)
  const attempt = (work: () => Promise<boolean>) => {
    last = ''
    return inSavepoint(admin, work, () => last, denied)
  }
  return {
    async read(table) {
      const keys = new Set<string>()
      const statement = await attempt(async () => {
        const columns = table.info.primaryKey
        for (const row of await db.select(table.name, undefined, { columns })) {
          keys.add(keyOf(table, row))
        }
        return keys.size > 0
      })
      return { keys, statement }
    },
    insert(table, values) {
      return attempt(async () => {
        const returning = table.info.primaryKey
        await db.insert(table.name, values, { returning, chosenKeys: uniqueOf(table, values) })
        return true
      })
    },
    update(table, row, set) {
      return attempt(async () => {
        const returning = table.info.primaryKey
        const chosenKeys = uniqueOf(table, set)
        return (
          (await db.update(table.name, whereKey(table, row), set, { returning, chosenKeys }))
            .count > 0
        )
      })
    },
    delete(table, row) {
      return attempt(async () => {
        const returning = table.info.primaryKey
        return (await db.delete(table.name, whereKey(table, row), { returning })).count > 0
      })
    },
  }
}

/** Plain SQL as the runtime role: only the forced row-level security policies decide. */
function rlsLayer(client: AdminClient): Layer {
  const denied = (error: unknown) => (error as { code?: unknown }).code === RLS_DENIED
  const run = (text: string, values: unknown[]) =>
    inSavepoint(
      client,
      async () => (await client.query(text, values)).rowCount! > 0,
      () => text,
      denied,
    )
  const where = (table: TableFixtures, first: number) =>
    table.info.primaryKey.map((c, i) => `${ident(c)} = $${first + i}`).join(' AND ')
  const keyValues = (table: TableFixtures, row: Row) => table.info.primaryKey.map((c) => row[c])
  return {
    async read(table) {
      const text = `SELECT ${table.info.primaryKey.map(ident).join(', ')} FROM ${table.info.sql}`
      const keys = new Set<string>()
      const statement = await inSavepoint(
        client,
        async () => {
          for (const row of (await client.query<Row>(text)).rows) keys.add(keyOf(table, row))
          return keys.size > 0
        },
        () => text,
        denied,
      )
      return { keys, statement }
    },
    insert(table, values) {
      const columns = Object.keys(values)
      return run(
        `INSERT INTO ${table.info.sql} (${columns.map(ident).join(', ')}) ` +
          `VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
        columns.map((c) => values[c]),
      )
    },
    update(table, row, set) {
      const columns = Object.keys(set)
      return run(
        `UPDATE ${table.info.sql} SET ${columns.map((c, i) => `${ident(c)} = $${i + 1}`).join(', ')} ` +
          `WHERE ${where(table, columns.length + 1)}`,
        [...columns.map((c) => set[c]), ...keyValues(table, row)],
      )
    },
    delete(table, row) {
      return run(`DELETE FROM ${table.info.sql} WHERE ${where(table, 1)}`, keyValues(table, row))
    },
  }
}

function summarise(
  statements: readonly ProbeStatement[],
  allowed: number,
  of: number,
): LayerResult {
  const outcome: LayerOutcome = statements.some((s) => s.error !== undefined)
    ? 'error'
    : allowed === 0
      ? 'none'
      : allowed === of
        ? 'all'
        : 'some'
  return { outcome, allowed, of, statements }
}

const NOT_APPLICABLE: LayerResult = { outcome: 'n/a', allowed: 0, of: 0, statements: [] }

/**
 * The column an update probe sets to the value it has: one that places the row, or any other; never
 * the primary key (the row key encrypted columns are bound to) nor a hidden column. With column
 * rules, the first column `columns.write` names (in its order) that is one of those: a probe
 * writes only a column some role may write.
 */
export function updateColumn(table: TableFixtures, rules?: ColumnRules): string | undefined {
  const candidates = [
    ...table.placement,
    ...table.info.columns.filter((c) => !c.generated).map((c) => c.name),
  ].filter((c) => !table.info.primaryKey.includes(c) && !(rules?.hidden ?? []).includes(c))
  for (const list of Object.values(rules?.write ?? {})) {
    const column = candidates.find((c) => list === '*' || list.includes(c))
    if (column !== undefined) return column
  }
  return candidates[0]
}

async function probe(
  layer: Layer,
  table: TableFixtures,
  operation: AccessOperation,
  rules: ColumnRules | undefined,
) {
  const [verb, group, , to] = operation.split(' ') as [string, GroupName, string?, GroupName?]
  const rows = table.rows[group]
  const writes = async (each: (row: FixtureRow, index: number) => Promise<ProbeStatement>) => {
    const statements: ProbeStatement[] = []
    for (const [index, row] of rows.entries()) statements.push(await each(row, index))
    return summarise(statements, statements.filter((s) => s.allowed).length, statements.length)
  }
  switch (verb) {
    case 'read': {
      const { keys, statement } = await layer.read(table)
      const seen = rows.filter((r) => keys.has(keyOf(table, r.row))).length
      return summarise([{ ...statement, allowed: seen > 0 }], seen, rows.length)
    }
    case 'insert': {
      if (table.inserts === undefined) return NOT_APPLICABLE
      const statements: ProbeStatement[] = []
      for (const values of table.inserts[group]) statements.push(await layer.insert(table, values))
      return summarise(statements, statements.filter((s) => s.allowed).length, statements.length)
    }
    case 'update': {
      const column = updateColumn(table, rules)
      if (column === undefined) return NOT_APPLICABLE
      return writes((r) => layer.update(table, r.row, { [column]: r.row[column] }))
    }
    case 'move': {
      // No group to move to; or a row placed by a unique column (its group's own row, e.g. the
      // groups table's id): the other group's row has that value, as for inserts (fixtures.ts).
      if (table.placement.length === 0 || table.placement.some((c) => table.info.unique.has(c))) {
        return NOT_APPLICABLE
      }
      const targets = table.rows[to as GroupName]
      // The groups' rows are made for the same owners, in the same order.
      return writes((r, index) => {
        const target = targets[index] as FixtureRow
        const set = Object.fromEntries(table.placement.map((c) => [c, target.row[c]]))
        return layer.update(table, r.row, set)
      })
    }
    default:
      return writes((r) => layer.delete(table, r.row))
  }
}

/** The connections the probes run on. */
export interface ProbeTargets {
  readonly admin: AdminClient
  readonly runtime: {
    connect(): Promise<AdminClient & { release(error?: Error | boolean): void }>
  }
  readonly signingKey: string
  readonly policies: Policies
}

/** Every operation of `callers` on `tables`, through both layers. */
export async function observe(
  targets: ProbeTargets,
  tables: readonly TableFixtures[],
  callers: readonly Caller[],
): Promise<Observation[]> {
  const signer = createCapabilitySigner(targets.signingKey)
  const observations: Observation[] = []
  for (const caller of callers) {
    const client = await targets.runtime.connect()
    await targets.admin.query('BEGIN')
    let clean = false
    try {
      await client.query('BEGIN')
      if (caller.capability !== undefined) {
        await client.query('SELECT keyhole.set_capability($1)', [signer.sign(caller.capability)])
      }
      const guard = guardLayer(targets.admin, targets.policies, caller)
      const rls = rlsLayer(client)
      for (const table of tables) {
        const rules = targets.policies.tables[table.name]!.columns
        for (const operation of OPERATIONS) {
          // Two connections: the layers run side by side.
          const [g, r] = await Promise.all([
            probe(guard, table, operation, rules),
            probe(rls, table, operation, rules),
          ])
          observations.push({ table: table.name, caller: caller.name, operation, guard: g, rls: r })
        }
      }
      await client.query('ROLLBACK')
      clean = true
    } finally {
      await targets.admin.query('ROLLBACK')
      // A probe that failed half-way leaves the runtime connection in a transaction: destroy it.
      client.release(!clean)
    }
  }
  return observations
}
