/**
 * The `where` object of a guarded statement: column → value, each an equality on a parameter
 * (`null` → `IS NULL`), or a guard fragment ANDed in (its key is only a label). There is no way to
 * pass SQL text.
 */
import { ConfigurationError } from '../errors.ts'
import { isGuard, type Guard } from './guard.ts'
import { quoteIdentifier } from './identifier.ts'
import { renderGuard, type RowScope, type Sql } from './render-guard.ts'
import type { StatementParams } from './compile.ts'

/** A value compared for equality, `null` for `IS NULL`, or a guard fragment. */
export type WhereValue =
  | string
  | number
  | boolean
  | bigint
  | Date
  | null
  | Guard
  | readonly unknown[]
  | { readonly [key: string]: unknown }

/** Column → value, all ANDed. */
export type Where = { readonly [column: string]: WhereValue }

function assertWhere(where: unknown): asserts where is Where {
  if (where === null || typeof where !== 'object' || Array.isArray(where)) {
    throw new ConfigurationError('KH_INVALID_OPTIONS', 'where must be an object of column → value')
  }
}

/**
 * The shape of `where` for the statement cache (`id=,deleted_at~,mine#3`), pushing the parameter
 * values onto `inputs` in the order {@link renderWhere} numbers them. Keys are checked on every
 * call, so a cache key can never be forged by a key that is not an identifier. UPDATE and DELETE
 * pass `required`: a missing `where` must not silently mean every row (`{}` says so explicitly).
 */
export function whereShape(where: Where | undefined, inputs: unknown[], required = false): string {
  if (where === undefined && !required) return ''
  assertWhere(where)
  let shape = ''
  for (const key of Object.keys(where)) {
    quoteIdentifier(key, 'where key')
    const value = where[key]
    if (value === null) shape += `${key}~,`
    else if (isGuard(value)) shape += `${key}#${value.id},`
    else if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
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
 * The conditions of `where` on the row in `scope`; parameters take inputs from `firstInput` on.
 * The caller ANDs them at the top of its statement, so each equality is also recorded as a fact
 * ({@link StatementParams.know}) that lets a group array compared with that column be narrowed.
 * ```sql
 * "t"."id" = $1 AND "t"."deleted_at" IS NULL
 * ```
 */
export function renderWhere(
  where: Where | undefined,
  scope: RowScope,
  params: StatementParams,
  firstInput: number,
): Sql[] {
  const parts: Sql[] = []
  if (where === undefined) return parts
  let index = firstInput
  for (const key of Object.keys(where)) {
    const value = where[key]
    if (isGuard(value)) parts.push(renderGuard(value.node, scope, params))
    else {
      const column = scope(quoteIdentifier(key, 'column'))
      if (value === null) parts.push(`${column} IS NULL`)
      else {
        // ANDed at the top of every statement that takes a `where`: the column equals the input.
        params.know(column, { kind: 'input', index })
        parts.push(`${column} = ${params.input(index++)}`)
      }
    }
  }
  return parts
}
