/**
 * Your own SQL, composed without concatenation: the `sql` tag turns a template into pg's
 * `{ text, values }`, every interpolated value a bind parameter numbered by keyhole, and a
 * policy's guard into a fragment ({@link guardFragment}) that such a template embeds like any
 * other. A fragment remembers which capability's guard it carries: 'guard' mode runs raw SQL only
 * when it carries the request's own (see raw-query.ts).
 */
import type { Capability } from '../capability/capability.ts'
import { ConfigurationError } from '../errors.ts'
import { groupArray } from './compile.ts'
import type { GuardNode } from './guard.ts'
import { quoteIdentifier, quoteTable } from './identifier.ts'
import { columnsOf, renderGuard, sqlText, type GuardTarget } from './render-guard.ts'

/** Marks a parameter in a rendered guard: `\u0001<index>\u0001` (identifiers never hold U+0001). */
const PARAMETER = /\u0001(\d+)\u0001/

const NO_GUARDS: ReadonlySet<Capability> = new Set()

/**
 * SQL text and its bind parameters, built by the {@link sql} tag or a guard fragment: pass it to
 * `request.db.query`, or to pg's `query` as a config (`pool.query(statement)`). Immutable.
 */
export class Sql {
  /** The text, parameters as `$1`, `$2`… in order of appearance. */
  readonly text: string
  /** The parameter values, in the order of their numbers. */
  readonly values: unknown[]
  readonly #pieces: readonly string[]
  readonly #guards: ReadonlySet<Capability>

  /** @internal build with the `sql` tag or `request.db.guard`. */
  constructor(
    pieces: readonly string[],
    values: readonly unknown[],
    guards: ReadonlySet<Capability>,
  ) {
    this.#pieces = pieces
    this.#guards = guards
    let text = pieces[0] as string
    for (let i = 1; i < pieces.length; i++) text += `$${i}${pieces[i]}`
    this.text = text
    this.values = Object.freeze([...values]) as unknown[]
    Object.freeze(this)
  }

  /** @internal */
  static pieces(statement: Sql): readonly string[] {
    return statement.#pieces
  }

  /** @internal the capabilities whose guards the statement embeds. */
  static guards(statement: Sql): ReadonlySet<Capability> {
    return statement.#guards
  }
}

/** True for a statement built by the {@link sql} tag or a guard fragment. */
export function isSql(value: unknown): value is Sql {
  return value instanceof Sql
}

/**
 * Composes SQL: the template's text is yours, every `${value}` becomes a bind parameter (`$1`,
 * `$2`… numbered here, never by hand), and an interpolated {@link Sql} (another `sql` template,
 * `request.db.guard(…)`) is embedded with its parameters renumbered. A value never enters the
 * text: an array is one parameter (`= ANY (${ids})`), a string is a string.
 *
 * The generated SQL for the example (non-admin):
 * ```sql
 * SELECT t.* FROM discussion_threads t
 * WHERE "t"."group_id" = ANY ($1::uuid[]) AND t.title ILIKE $2
 * ```
 * @throws ConfigurationError `KH_INVALID_OPTIONS` when called as a function, not as a tag
 * (`sql(text)` would put text in the statement that the tag never saw).
 * @example
 * const statement = sql`SELECT t.* FROM discussion_threads t
 *   WHERE ${request.db.guard('discussion_threads', 'read', { alias: 't' })} AND t.title ILIKE ${pattern}`
 * const { rows } = await request.db.query(statement)
 */
export function sql(strings: TemplateStringsArray, ...values: unknown[]): Sql {
  if (!Array.isArray(strings) || !Array.isArray((strings as { raw?: unknown }).raw)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'sql is a template tag: write sql`SELECT … WHERE id = ${id}`, never sql(text)',
    )
  }
  const pieces: string[] = [strings[0] as string]
  const params: unknown[] = []
  let guards = NO_GUARDS
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    const next = strings[i + 1] as string
    if (value instanceof Sql) {
      const inner = Sql.pieces(value)
      pieces[pieces.length - 1] += inner[0] as string
      for (let k = 1; k < inner.length; k++) pieces.push(inner[k] as string)
      pieces[pieces.length - 1] += next
      params.push(...value.values)
      const more = Sql.guards(value)
      if (more.size > 0) guards = guards.size === 0 ? more : new Set([...guards, ...more])
    } else {
      params.push(value)
      pieces.push(next)
    }
  }
  return new Sql(pieces, params, guards)
}

/** Where a guard fragment reads the row's columns. */
export interface GuardFragmentOptions {
  /**
   * The alias the statement gives the table (`FROM discussion_threads t` → `'t'`): a plain
   * identifier, quoted as written. `p1`, `p2`… are refused: the guard's parent subqueries use them.
   * @default the table's name (`"discussion_threads"."group_id"`)
   */
  readonly alias?: string | undefined
}

const PARENT_ALIAS = /^p[0-9]+$/

/**
 * A guard rendered for `capability` as a condition on the row of `table` (or its `alias`): the
 * same SQL a guarded statement carries, the capability's groups and subject as parameters. Folds
 * as a guarded statement does (an admin's group check is `TRUE`).
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER` for a bad table name or alias;
 * `KH_INVALID_OPTIONS` for a role outside the capability's hierarchy.
 */
export function guardFragment(
  node: GuardNode,
  capability: Capability,
  table: string,
  options: GuardFragmentOptions = {},
): Sql {
  const relation = quoteTable(table).relation
  const alias = options?.alias
  let qualifier = relation
  if (alias !== undefined) {
    qualifier = quoteIdentifier(alias, 'alias')
    if (PARENT_ALIAS.test(alias)) {
      throw new ConfigurationError(
        'KH_INVALID_IDENTIFIER',
        `Invalid alias ${alias}: p1, p2… name the guard's parent rows; choose another alias`,
      )
    }
  }
  const params: unknown[] = []
  const type = capability.groupIdType
  const parameter = (value: unknown) => `\u0001${params.push(value) - 1}\u0001`
  const target: GuardTarget = {
    admin: capability.isAdmin,
    castSubjectColumn: false,
    groups: (role) => `${parameter(groupArray(capability.binding(role).groups, type))}::${type}[]`,
    subject: () => parameter(capability.subject),
    noteRole: (role) => void capability.binding(role),
  }
  const parts = sqlText(renderGuard(node, columnsOf(qualifier), target)).split(PARAMETER)
  // split() with a capture group alternates text and parameter indices, in order of appearance:
  // a parameter whose branch folded away (an AND with FALSE) is simply not there.
  const pieces: string[] = []
  const values: unknown[] = []
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) pieces.push(parts[i] as string)
    else values.push(params[Number(parts[i])])
  }
  return new Sql(pieces, values, new Set([capability]))
}
