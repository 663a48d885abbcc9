/**
 * The expectation table: for each table and caller, which operations go through for every row
 * (`can`), for some (`partly`) or for none (`cannot`). A cell nobody labelled expects none: a new
 * permission has to be written down before the test passes.
 */
import { ConfigurationError } from '../errors.ts'
import type { Policies } from '../sql/policies.ts'
import { OPERATIONS, type Access, type AccessOperation } from './probe.ts'

/**
 * An operation, or a shorthand for several: `read` is `read A` and `read B` (likewise `insert`,
 * `update`, `delete`), `move` is both moves, `any` every operation.
 */
export type OperationLabel =
  AccessOperation | 'read' | 'insert' | 'update' | 'delete' | 'move' | 'any'

/** One caller's row of the table; an operation in none of the lists expects `none`. */
export interface CallerExpectation {
  /** Operations that go through for every row. */
  readonly can?: readonly OperationLabel[] | undefined
  /** Operations that go through for some rows and not others (say, the caller's own). */
  readonly partly?: readonly OperationLabel[] | undefined
  /** Operations that go through for no row (the default; for readability). */
  readonly cannot?: readonly OperationLabel[] | undefined
}

/** Table → caller → expectation: the plain-object form of {@link expectAccess}. */
export interface AccessExpectations {
  readonly [table: string]: { readonly [caller: string]: CallerExpectation }
}

const SHORTHANDS: Readonly<Record<string, readonly AccessOperation[]>> = {
  read: ['read A', 'read B'],
  insert: ['insert A', 'insert B'],
  update: ['update A', 'update B'],
  delete: ['delete A', 'delete B'],
  move: ['move A to B', 'move B to A'],
  any: OPERATIONS,
}

function expand(label: unknown): readonly AccessOperation[] {
  if (typeof label === 'string') {
    if (Object.hasOwn(SHORTHANDS, label)) return SHORTHANDS[label] as readonly AccessOperation[]
    if ((OPERATIONS as readonly string[]).includes(label)) return [label as AccessOperation]
  }
  throw new ConfigurationError(
    'KH_INVALID_OPTIONS',
    `Unknown operation ${JSON.stringify(label)}: expected one of ${[...Object.keys(SHORTHANDS), ...OPERATIONS].map((o) => JSON.stringify(o)).join(', ')}`,
  )
}

/** The expected access of every labelled cell, `table\u0000caller\u0000operation` → access. */
export type ExpectedCells = ReadonlyMap<string, Access>

export const cellKey = (table: string, caller: string, operation: AccessOperation) =>
  `${table}\u0000${caller}\u0000${operation}`

/**
 * Checks `expectations` against the tables and callers and expands the shorthands.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming an unknown table, caller or operation,
 * or a cell labelled two ways.
 */
export function expectedCells(
  expectations: AccessExpectations,
  tables: readonly string[],
  callers: readonly string[],
): ExpectedCells {
  const cells = new Map<string, Access>()
  for (const [table, rows] of Object.entries(expectations)) {
    if (!tables.includes(table)) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `The expectations name the table ${JSON.stringify(table)}, which the policies do not declare`,
      )
    }
    for (const [caller, expectation] of Object.entries(rows)) {
      if (!callers.includes(caller)) {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          `Unknown caller ${JSON.stringify(caller)}: the callers are ${callers.map((c) => JSON.stringify(c)).join(', ')}`,
        )
      }
      const lists: [Access, readonly OperationLabel[] | undefined][] = [
        ['all', expectation.can],
        ['some', expectation.partly],
        ['none', expectation.cannot],
      ]
      for (const [access, labels] of lists) {
        for (const operation of (labels ?? []).flatMap(expand)) {
          const key = cellKey(table, caller, operation)
          const known = cells.get(key)
          if (known !== undefined && known !== access) {
            throw new ConfigurationError(
              'KH_INVALID_OPTIONS',
              `${table} · ${caller} · ${operation} is expected both ${known} and ${access}`,
            )
          }
          cells.set(key, access)
        }
      }
    }
  }
  return cells
}

type Lists = { can: OperationLabel[]; partly: OperationLabel[]; cannot: OperationLabel[] }

/** The chained form of {@link AccessExpectations}, from {@link expectAccess}. */
export class AccessExpectationBuilder {
  readonly #tables: readonly string[]
  readonly #expectations: Record<string, Record<string, Lists>> = {}
  #table: string | undefined
  #caller: Lists | undefined

  /** @internal use {@link expectAccess}. */
  constructor(policies: Policies) {
    this.#tables = Object.keys(policies.tables)
  }

  /** The table the next `as(…)` rows are about. */
  table(name: string): this {
    if (!this.#tables.includes(name)) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `expectAccess: the policies do not declare the table ${JSON.stringify(name)}`,
      )
    }
    this.#table = name
    this.#expectations[name] ??= {}
    this.#caller = undefined
    return this
  }

  /** The caller the next `can`, `partly` and `cannot` are about. */
  as(caller: string): this {
    if (this.#table === undefined) {
      throw new ConfigurationError('KH_INVALID_OPTIONS', 'expectAccess: call table() before as()')
    }
    const rows = this.#expectations[this.#table] as Record<string, Lists>
    this.#caller = rows[caller] ??= { can: [], partly: [], cannot: [] }
    return this
  }

  #add(list: keyof Lists, operations: readonly OperationLabel[]): this {
    if (this.#caller === undefined) {
      throw new ConfigurationError('KH_INVALID_OPTIONS', `expectAccess: call as() before ${list}()`)
    }
    operations.forEach(expand)
    this.#caller[list].push(...operations)
    return this
  }

  /** These operations go through for every row. */
  can(...operations: OperationLabel[]): this {
    return this.#add('can', operations)
  }

  /** These operations go through for some rows (e.g. the caller's own) and not others. */
  partly(...operations: OperationLabel[]): this {
    return this.#add('partly', operations)
  }

  /** These operations go through for no row (the default of an unlabelled cell). */
  cannot(...operations: OperationLabel[]): this {
    return this.#add('cannot', operations)
  }

  /** The plain-object form. */
  toJSON(): AccessExpectations {
    return structuredClone(this.#expectations)
  }
}

/**
 * Starts an expectation table for `policies`.
 * @example
 * const expected = expectAccess(policies)
 *   .table('discussion_threads')
 *   .as('member of A').can('read A', 'insert A').partly('update A')
 *   .as('moderator of A').can('read A', 'insert A', 'update A', 'delete A')
 *   .as('admin').can('any')
 */
export function expectAccess(policies: Policies): AccessExpectationBuilder {
  return new AccessExpectationBuilder(policies)
}
