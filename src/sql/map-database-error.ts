/**
 * Maps PostgreSQL's errors on a guarded statement to keyhole's, by SQLSTATE only: the server's
 * message and DETAIL can name rows the holder may not see (`Key (id)=(…) already exists`), so
 * they never reach the new error's message; the original stays as its non-enumerable `cause`.
 */
import {
  BadRequest,
  CapabilityDenied,
  Conflict,
  NotFound,
  type GuardedOperation,
} from '../errors.ts'

/** What the failed statement was doing. */
export interface DatabaseErrorContext {
  /** The table as the caller named it. */
  readonly table: string
  readonly operation: GuardedOperation
}

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/**
 * The error to throw for `error`:
 * - `42501` (an RLS policy refused the row, or a privilege is missing) → {@link CapabilityDenied}
 *   that answers 404: the statement cannot tell whether the holder may see the row;
 * - `23505` unique violation → {@link Conflict} (409): reached only through a unique column the
 *   statement names in `chosenKeys` (any other is refused before writing, see unique-keys.ts);
 * - `23503` foreign-key violation → {@link NotFound} when the written row names a parent that does
 *   not exist (insert, update of the referencing row), {@link Conflict} when other rows still refer
 *   to the deleted or updated row;
 * - class `22` (bad value: invalid UUID, NUL byte, out of range…), `23502` not-null, `23514` check,
 *   `42703` unknown column → {@link BadRequest} (400);
 * - anything else (not a database error, or a server fault) → `error` itself.
 */
export function mapDatabaseError(error: unknown, context: DatabaseErrorContext): unknown {
  const code = sqlState(error)
  if (code === undefined) return error
  const cause = error
  switch (code) {
    case '42501':
      return new CapabilityDenied({ ...context, visible: false, cause })
    case '23505':
      return new Conflict({ cause })
    case '23503': {
      const referencing = (error as { table?: unknown }).table
      const ownRow =
        context.operation === 'insert' ||
        (context.operation === 'update' && referencing === context.table.split('.').pop())
      return ownRow ? new NotFound({ cause }) : new Conflict({ cause })
    }
    case '23502':
    case '23514':
    case '42703':
      return new BadRequest({ cause })
    default:
      return code.startsWith('22') ? new BadRequest({ cause }) : error
  }
}
