/**
 * Maps PostgreSQL's errors on a guarded statement to keyhole's, by SQLSTATE only: the server's
 * message and DETAIL can name rows the holder may not see (`Key (id)=(…) already exists`), so
 * they never reach the new error's message; the original stays as its non-enumerable `cause`.
 */
import {
  BadRequest,
  CapabilityDenied,
  Conflict,
  DatabaseFault,
  NotFound,
  ServiceUnavailable,
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
 * SQLSTATE classes that say the database could not serve the statement now, not that the statement
 * or the caller is wrong: 08 connection exception, 28 invalid authorization (the runtime role's
 * password changed), 40 transaction rollback (serialization failure, deadlock), 53 insufficient
 * resources (too many connections), 57 operator intervention (statement timeout, shutdown).
 */
const UNAVAILABLE_CLASSES = new Set(['08', '28', '40', '53', '57'])

/** Node's socket errors and pg's own connection errors carry no SQLSTATE. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
])
const PG_CONNECTION_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed)/

function isConnectionFailure(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  return (
    (typeof code === 'string' && NETWORK_CODES.has(code)) ||
    (typeof message === 'string' && PG_CONNECTION_MESSAGE.test(message))
  )
}

/**
 * The error to throw for `error`, raised by a guarded statement (`context` says which) or by the
 * application's own SQL (`request.db.query`, no context):
 * - `42501` (an RLS policy refused the row, or a privilege is missing) → {@link CapabilityDenied}
 *   that answers 404 (without a context: {@link NotFound}): the statement cannot tell whether the
 *   holder may see the row;
 * - `23505` unique violation → {@link Conflict} (409): reached only through a unique column the
 *   statement names in `chosenKeys` (any other is refused before writing, see unique-keys.ts);
 * - `23503` foreign-key violation → {@link NotFound} when the written row names a parent that does
 *   not exist (insert, update of the referencing row), {@link Conflict} when other rows still refer
 *   to the deleted or updated row;
 * - class `22` (bad value: invalid UUID, NUL byte, out of range…), `23502` not-null, `23514` check,
 *   `42703` unknown column → {@link BadRequest} (400);
 * - classes `08`, `28`, `40`, `53`, `57`, and a connection that failed or was cut (no SQLSTATE) →
 *   {@link ServiceUnavailable} (503): retry later;
 * - any other SQLSTATE → {@link DatabaseFault} (500);
 * - anything else (not from the database: a keyhole error, a misuse such as a statement after the
 *   response) → `error` itself.
 *
 * Every mapped error answers with the catalogue's generic message: the server's message can name
 * roles, tables and values.
 */
export function mapDatabaseError(error: unknown, context?: DatabaseErrorContext): unknown {
  const cause = error
  const code = sqlState(error)
  if (code === undefined)
    return isConnectionFailure(error) ? new ServiceUnavailable({ cause }) : error
  switch (code) {
    case '42501':
      return context === undefined
        ? new NotFound({ cause })
        : new CapabilityDenied({ ...context, visible: false, cause })
    case '23505':
      return new Conflict({ cause })
    case '23503': {
      const referencing = (error as { table?: unknown }).table
      const ownRow =
        context?.operation === 'insert' ||
        (context?.operation === 'update' && referencing === context.table.split('.').pop())
      return ownRow ? new NotFound({ cause }) : new Conflict({ cause })
    }
    case '23502':
    case '23514':
    case '42703':
      return new BadRequest({ cause })
    default:
      if (code.startsWith('22')) return new BadRequest({ cause })
      return UNAVAILABLE_CLASSES.has(code.slice(0, 2))
        ? new ServiceUnavailable({ cause })
        : new DatabaseFault({ cause })
  }
}
