/**
 * The `where` object of a guarded statement: column → value, each an equality on a parameter
 * (`null` → `IS NULL`), a {@link Filter} from `op` (comparisons on the column, or an `or`/`and`/
 * `not` group whose key is only a label), or a guard fragment ANDed in (its key is only a label).
 * There is no way to pass SQL text, and a plain object is a value, never an operator.
 */
import { ConfigurationError } from '../errors.ts'
import { isFilter, type Filter } from './filter.ts'
import { isGuard, type Guard } from './guard.ts'
import { quoteIdentifier } from './identifier.ts'
import { andSql, orSql, renderGuard, type RowScope, type Sql } from './render-guard.ts'
import type { StatementParams } from './compile.ts'

/** A value compared for equality, `null` for `IS NULL`, a filter, or a guard fragment. */
export type WhereValue =
  | string
  | number
  | boolean
  | bigint
  | Date
  | null
  | Guard
  // Any filter: `never` is the widest (the phantom is a parameter type).
  | Filter<never>
  | readonly unknown[]
  | { readonly [key: string]: unknown }

/** Column → value, all ANDed. */
export type Where = { readonly [column: string]: WhereValue }

function assertWhere(where: unknown): asserts where is Where {
  if (
    where === null ||
    typeof where !== 'object' ||
    Array.isArray(where) ||
    isFilter(where) ||
    isGuard(where)
  ) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'where must be an object of column → value (a guard or op filter goes under a key)',
    )
  }
}

function shapeOf(where: Where, inputs: unknown[]): string {
  let shape = ''
  for (const key of Object.keys(where)) {
    quoteIdentifier(key, 'where key')
    const value = where[key]
    if (value === null) shape += `${key}~,`
    else if (isGuard(value)) shape += `${key}#${value.id},`
    else if (isFilter(value)) {
      if (value.kind === 'column') {
        shape += `${key}${value.shape},`
        for (const c of value.comparisons) if (c.bound) inputs.push(c.value)
      } else {
        shape += `${key}(${value.kind}`
        for (const w of value.wheres) shape += `[${shapeOf(w as Where, inputs)}]`
        shape += '),'
      }
    } else if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `where.${key} is ${typeof value}: pass a value or null`,
      )
    } else {
      shape += `${key}=,`
      inputs.push(value)
    }
  }
  return shape
}

/**
 * The shape of `where` for the statement cache (`id=,deleted_at~,mine#3,at{gte >= ,},x(or[a=,][b=,])`),
 * pushing the parameter values onto `inputs` in the order {@link renderWhere} numbers them. Keys are
 * checked on every call, so a cache key can never be forged by a key that is not an identifier;
 * operators come from a fixed list. UPDATE and DELETE pass `required`: a missing `where` must not
 * silently mean every row (`{}` says so explicitly).
 */
export function whereShape(where: Where | undefined, inputs: unknown[], required = false): string {
  if (where === undefined && !required) return ''
  assertWhere(where)
  return shapeOf(where, inputs)
}

/** Numbers the inputs as {@link whereShape} pushed them. */
interface Counter {
  next: number
}

function render(
  where: Where,
  scope: RowScope,
  params: StatementParams,
  counter: Counter,
  top: boolean,
): Sql[] {
  const parts: Sql[] = []
  for (const key of Object.keys(where)) {
    const value = where[key]
    if (isGuard(value)) {
      parts.push(renderGuard(value.node, scope, params))
      continue
    }
    if (isFilter(value) && value.kind !== 'column') {
      const groups = value.wheres.map((w) =>
        andSql(render(w as Where, scope, params, counter, false)),
      )
      if (value.kind === 'or') parts.push(orSql(groups))
      else if (value.kind === 'and') parts.push(andSql(groups))
      else {
        const inner = groups[0] as Sql
        parts.push(typeof inner === 'boolean' ? !inner : `NOT (${inner})`)
      }
      continue
    }
    const column = scope(quoteIdentifier(key, 'column'))
    if (value === null) parts.push(`${column} IS NULL`)
    else if (isFilter(value)) {
      for (const c of value.comparisons) {
        const value = c.bound ? params.input(counter.next++) : ''
        parts.push(`${column}${c.sql}${value}${c.sql.endsWith('(') ? ')' : ''}`)
      }
    } else {
      // ANDed at the top of every statement that takes a `where`: the column equals the input.
      if (top) params.know(column, { kind: 'input', index: counter.next })
      parts.push(`${column} = ${params.input(counter.next++)}`)
    }
  }
  return parts
}

/**
 * The conditions of `where` on the row in `scope`; parameters take inputs from `firstInput` on.
 * The caller ANDs them at the top of its statement, so each top-level equality is also recorded as
 * a fact ({@link StatementParams.know}) that lets a group array compared with that column be
 * narrowed (never one inside a group: it does not hold for every row the statement reaches).
 * ```sql
 * "t"."id" = $1 AND "t"."deleted_at" IS NULL AND "t"."created_at" >= $2
 * AND ("t"."created_by" = $3 OR NOT ("t"."title" ILIKE $4))
 * ```
 */
export function renderWhere(
  where: Where | undefined,
  scope: RowScope,
  params: StatementParams,
  firstInput: number,
): Sql[] {
  if (where === undefined) return []
  return render(where, scope, params, { next: firstInput }, true)
}
