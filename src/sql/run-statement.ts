/** Runs a compiled statement and maps its database errors. */
import { kGenerated } from './generated-statement.ts'
import { ConfigurationError } from '../errors.ts'
import type { Capability } from '../capability/capability.ts'
import { bindParameters, type CompiledStatement } from './compile.ts'
import { quoteIdentifier } from './identifier.ts'
import { mapDatabaseError, type DatabaseErrorContext } from './map-database-error.ts'
import type { Queryable, QueryResultLike, Row } from './queryable.ts'

/**
 * Binds the capability, inputs and facts (the rows the statement's `field` facts read), runs (as a named prepared statement unless told not to). */
export function runStatement(
  db: Queryable,
  statement: CompiledStatement,
  capability: Capability,
  inputs: readonly unknown[],
  prepared: boolean | undefined,
  context: DatabaseErrorContext,
  facts?: readonly unknown[],
): Promise<Row[]> {
  let values: unknown[]
  try {
    values = bindParameters(statement, capability, inputs, facts)
  } catch (error) {
    return Promise.reject(error as Error)
  }
  // Marked as keyhole's own: a request made only of these needs no session reset.
  const config =
    prepared === false
      ? { text: statement.text, values, [kGenerated]: true }
      : { name: statement.name, text: statement.text, values, [kGenerated]: true }
  let query: Promise<QueryResultLike<Row>>
  try {
    query = Promise.resolve(db.query(config))
  } catch (error) {
    return Promise.reject(mapDatabaseError(error, context) as Error) // a handle that throws at once
  }
  // Not an async function: the query's promise and one more, no suspended frame per call.
  return query.then(rowsOf, (error: unknown) => {
    throw mapDatabaseError(error, context)
  })
}

function rowsOf(result: QueryResultLike<Row>): Row[] {
  return result.rows
}

/** The row without keyhole's bookkeeping columns (`__keyhole_*`). */
export function withoutBookkeeping(row: Row): Row {
  const out: Row = {}
  for (const key in row) if (!key.startsWith('__keyhole_')) out[key] = row[key]
  return out
}

/** The value of `returning` when the caller gives none: every column of the written row. */
export type Returning = '*' | readonly string[]

/**
 * The `RETURNING` list on the target aliased `"t"`: `"t".*` or `"t"."id", "t"."title"`; `''` for
 * an empty list (return nothing).
 */
export function returningSql(returning: Returning): string {
  if (returning === '*') return '"t".*'
  if (!Array.isArray(returning)) {
    throw new ConfigurationError('KH_INVALID_OPTIONS', "returning must be '*' or a list of columns")
  }
  return returning.map((c) => `"t".${quoteIdentifier(c, 'column')}`).join(', ')
}
