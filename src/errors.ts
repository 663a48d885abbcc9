/**
 * The error catalogue. Every error keyhole raises is a {@link KeyholeError} with a stable string
 * `code`, an HTTP `statusCode` and, where the protocol asks for one, `headers` (RFC 6750's
 * `WWW-Authenticate`). Fastify and Express both read `statusCode` and `headers`, so one class
 * serves both adapters. Messages are generic: they never carry a token, a claim value or a
 * database DETAIL. The underlying library's error is kept as `cause` (non-enumerable, so it is
 * not serialised into a response or a log line by accident).
 */

/** RFC 6750 §3.1 error codes carried in `WWW-Authenticate`. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope'

interface CatalogueEntry {
  readonly statusCode: number
  readonly message: string
  /** The RFC 6750 `error` attribute, when the response carries `WWW-Authenticate`. */
  readonly bearer?: BearerErrorCode | null
}

/**
 * Every code keyhole can raise, with its status and generic message. The error table of
 * docs/errors.md is this table; `test/errors.test.ts` walks it.
 */
export const errorCatalogue = {
  // Configuration and API misuse: thrown at registration or build time, never per request.
  KH_INVALID_OPTIONS: { statusCode: 500, message: 'Invalid keyhole options' },
  KH_INVALID_IDENTIFIER: { statusCode: 500, message: 'Invalid SQL identifier' },
  KH_NO_POLICY: { statusCode: 500, message: 'No policy allows this operation on this table' },
  KH_INSECURE_DATABASE: { statusCode: 500, message: 'The database configuration is insecure' },
  KH_DISCOVERY_FAILED: { statusCode: 500, message: "The issuer's discovery document is unusable" },
  KH_JWKS_FAILED: { statusCode: 500, message: 'The key set could not be fetched at start-up' },
  KH_SYSTEM_NOT_DECLARED: {
    statusCode: 500,
    message: 'The system context is not declared for this operation on this table',
  },
  KH_SYSTEM_IN_REQUEST: {
    statusCode: 500,
    message: 'The system context was refused inside a request',
  },
  // 'guard' mode has no second line: the application's own SQL must embed the request's guard.
  KH_UNGUARDED_SQL: {
    statusCode: 500,
    message: "SQL run in 'guard' mode must embed the request's guard",
  },
  // Encrypted columns (docs/columns.md): a missing data key refuses the start, a statement that
  // cannot work on ciphertext is refused before any SQL, a value that fails to open is a fault.
  KH_DATA_KEY_MISSING: {
    statusCode: 500,
    message: 'The policies declare encrypted columns but no data key is configured',
  },
  KH_ENCRYPTED_COLUMN: {
    statusCode: 500,
    message: 'This statement cannot run on an encrypted column',
  },
  KH_DECRYPT_FAILED: { statusCode: 500, message: 'A stored value failed to decrypt' },

  // 401: the request did not carry a usable token.
  KH_TOKEN_MISSING: { statusCode: 401, message: 'Authorization required', bearer: null },
  KH_TOKEN_MALFORMED: {
    statusCode: 401,
    message: 'The access token is malformed',
    bearer: 'invalid_token',
  },
  KH_TOKEN_AMBIGUOUS: {
    statusCode: 401,
    message: 'The request carries more than one access token',
    bearer: 'invalid_request',
  },
  KH_TOKEN_TOO_LARGE: {
    statusCode: 401,
    message: 'The access token is too large',
    bearer: 'invalid_token',
  },
  KH_TOKEN_ALGORITHM: {
    statusCode: 401,
    message: 'The access token algorithm is not allowed',
    bearer: 'invalid_token',
  },
  KH_TOKEN_SIGNATURE: {
    statusCode: 401,
    message: 'The access token signature is invalid',
    bearer: 'invalid_token',
  },
  KH_TOKEN_KEY_UNKNOWN: {
    statusCode: 401,
    message: 'No key matches the access token',
    bearer: 'invalid_token',
  },
  KH_TOKEN_EXPIRED: {
    statusCode: 401,
    message: 'The access token expired',
    bearer: 'invalid_token',
  },
  KH_TOKEN_CLAIM: {
    statusCode: 401,
    message: 'The access token claims are invalid',
    bearer: 'invalid_token',
  },
  KH_TOKEN_PERMISSIONS: {
    statusCode: 401,
    message: 'The access token permissions are invalid',
    bearer: 'invalid_token',
  },
  KH_TOKEN_REVOKED: {
    statusCode: 401,
    message: 'The access token was revoked',
    bearer: 'invalid_token',
  },
  KH_TOKEN_SCOPE: {
    statusCode: 401,
    message: 'The access token scopes are invalid',
    bearer: 'invalid_token',
  },

  // 503: keyhole cannot decide right now, so it refuses.
  KH_KEYS_UNAVAILABLE: { statusCode: 503, message: 'The token signing keys are unavailable' },
  KH_UNAVAILABLE: { statusCode: 503, message: 'Service unavailable' },

  // 500: the request's own SQL left its pooled connection inside a transaction; it was destroyed.
  KH_SESSION_DIRTY: {
    statusCode: 500,
    message: 'The request left its database connection inside a transaction',
  },
  // 500: the database refused a guarded statement for a reason that is not the caller's input.
  KH_DATABASE_ERROR: { statusCode: 500, message: 'Database error' },

  // 4xx: authenticated, but refused.
  KH_FORBIDDEN: { statusCode: 403, message: 'Insufficient role', bearer: 'insufficient_scope' },
  KH_INSUFFICIENT_SCOPE: {
    statusCode: 403,
    message: 'Insufficient scope',
    bearer: 'insufficient_scope',
  },
  KH_CAPABILITY_DENIED: {
    statusCode: 403,
    message: 'The capability does not allow this operation',
  },
  KH_COLUMN_DENIED: {
    statusCode: 403,
    message: 'The capability may not read or write this column',
  },
  KH_NOT_FOUND: { statusCode: 404, message: 'Not found' },
  KH_CONFLICT: { statusCode: 409, message: 'Conflict with an existing row' },
  KH_BAD_REQUEST: { statusCode: 400, message: 'Bad request' },
} as const satisfies Record<string, CatalogueEntry>

export type KeyholeErrorCode = keyof typeof errorCatalogue

// Typed by the catalogue's statuses: a new status without its reason phrase fails to compile, so no
// runtime fallback (which no test could reach) is needed.
const statusText: Record<(typeof errorCatalogue)[KeyholeErrorCode]['statusCode'], string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export interface KeyholeErrorOptions {
  /** Replaces the catalogue's generic message. Never put a token or claim value here. */
  message?: string
  cause?: unknown
}

/** The base class of every error keyhole raises. */
export class KeyholeError extends Error {
  readonly code: KeyholeErrorCode
  readonly statusCode: number
  /** The HTTP reason phrase for `statusCode`, as Fastify puts in `error`. */
  readonly error: string

  constructor(code: KeyholeErrorCode, options: KeyholeErrorOptions = {}) {
    const entry: CatalogueEntry = errorCatalogue[code]
    super(options.message ?? entry.message)
    this.code = code
    this.statusCode = entry.statusCode
    this.error = statusText[errorCatalogue[code].statusCode]
    if (options.cause !== undefined) {
      Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false })
    }
  }

  override get name(): string {
    return this.constructor.name
  }

  /** Response headers that go with this error; empty unless the protocol asks for some. */
  get headers(): Record<string, string> {
    return {}
  }

  /** The Fastify-style response body: `{ statusCode, error, message, code }`. */
  toJSON(): { statusCode: number; error: string; message: string; code: KeyholeErrorCode } {
    return {
      statusCode: this.statusCode,
      error: this.error,
      message: this.message,
      code: this.code,
    }
  }
}

function quote(value: string): string {
  // RFC 6750 auth-param values are quoted strings; keyhole's own values never hold quotes, but a
  // configured realm might, so escape rather than trust.
  return `"${value.replace(/["\\]/g, '\\$&')}"`
}

/** A bearer-token failure: 401 (or 503 for unavailable keys) with `WWW-Authenticate`. */
export class TokenError extends KeyholeError {
  /** The realm named in `WWW-Authenticate`; the adapters set it from their options. */
  realm: string
  /**
   * Why the token was refused, for the denial log only (never in a response): the check that
   * failed (`iss: not the configured issuer`), never a claim's value. Not enumerable.
   */
  declare readonly reason: string | undefined

  constructor(
    code: Extract<KeyholeErrorCode, `KH_TOKEN_${string}` | 'KH_KEYS_UNAVAILABLE'>,
    options: KeyholeErrorOptions & { realm?: string; reason?: string } = {},
  ) {
    super(code, options)
    this.realm = options.realm ?? 'keyhole'
    Object.defineProperty(this, 'reason', { value: options.reason, enumerable: false })
  }

  override get headers(): Record<string, string> {
    const entry: CatalogueEntry = errorCatalogue[this.code]
    if (entry.statusCode !== 401) return {}
    let value = `Bearer realm=${quote(this.realm)}`
    if (entry.bearer) {
      value += `, error=${quote(entry.bearer)}, error_description=${quote(entry.message)}`
    }
    return { 'www-authenticate': value }
  }
}

/** `requireRole` refused: the holder lacks the role (in that group). 403, `insufficient_scope`. */
export class Forbidden extends KeyholeError {
  realm: string
  constructor(options: KeyholeErrorOptions & { realm?: string } = {}) {
    super('KH_FORBIDDEN', options)
    this.realm = options.realm ?? 'keyhole'
  }

  override get headers(): Record<string, string> {
    return {
      'www-authenticate': `Bearer realm=${quote(this.realm)}, error="insufficient_scope", error_description=${quote(this.message)}`,
    }
  }
}

/**
 * `requireScope` refused: the token lacks a required scope. 403 with RFC 6750 §3.1's
 * `insufficient_scope` and the scopes the route requires in the challenge's `scope` attribute.
 */
export class InsufficientScope extends KeyholeError {
  realm: string
  /** The scopes the route requires (all of them), as in the challenge. */
  readonly scopes: readonly string[]

  constructor(scopes: readonly string[], options: KeyholeErrorOptions & { realm?: string } = {}) {
    super('KH_INSUFFICIENT_SCOPE', options)
    this.realm = options.realm ?? 'keyhole'
    this.scopes = Object.freeze([...scopes])
  }

  override get headers(): Record<string, string> {
    return {
      'www-authenticate': `Bearer realm=${quote(this.realm)}, error="insufficient_scope", error_description=${quote(this.message)}, scope=${quote(this.scopes.join(' '))}`,
    }
  }
}

export type GuardedOperation = 'select' | 'insert' | 'update' | 'delete'

/**
 * A guarded statement was stopped by its guard. `visible` says whether the target row is visible to
 * the holder under the table's read guard, so an API can answer 403 (visible) or 404 (not visible,
 * or absent) without leaking existence. `statusCode` already follows that rule.
 */
export class CapabilityDenied extends KeyholeError {
  readonly table: string
  readonly operation: GuardedOperation
  readonly visible: boolean

  constructor(details: {
    table: string
    operation: GuardedOperation
    visible: boolean
    cause?: unknown
  }) {
    super('KH_CAPABILITY_DENIED', {
      message: `The capability does not allow ${details.operation} on ${details.table}`,
      cause: details.cause,
    })
    this.table = details.table
    this.operation = details.operation
    this.visible = details.visible
    if (!details.visible) {
      // The caller cannot see the row: answer exactly as for a row that does not exist.
      Object.defineProperty(this, 'statusCode', { value: 404 })
      Object.defineProperty(this, 'error', { value: 'Not Found' })
      Object.defineProperty(this, 'message', { value: errorCatalogue.KH_NOT_FOUND.message })
    }
  }

  override toJSON() {
    // A denial on an invisible row must be indistinguishable from KH_NOT_FOUND on the wire.
    if (!this.visible) return new NotFound().toJSON()
    return super.toJSON()
  }
}

/**
 * A statement named a column the capability may read (or write) in no row, or a hidden one:
 * refused before any SQL, so it says nothing about any row. 403.
 */
export class ColumnDenied extends KeyholeError {
  readonly table: string
  readonly column: string
  readonly verb: 'read' | 'write'

  constructor(details: { table: string; column: string; verb: 'read' | 'write' }) {
    super('KH_COLUMN_DENIED', {
      message: `The capability may not ${details.verb} the column ${details.column} of ${details.table}`,
    })
    this.table = details.table
    this.column = details.column
    this.verb = details.verb
  }
}

/** 404: the row does not exist, or the holder may not see it. */
export class NotFound extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_NOT_FOUND', options)
  }
}

/** 409: a unique or foreign-key constraint refused the write. DETAIL is never echoed. */
export class Conflict extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_CONFLICT', options)
  }
}

/** 400: the request's own input is malformed (never used for a bad token). */
export class BadRequest extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_BAD_REQUEST', options)
  }
}

/** 503: keyhole refuses because it cannot decide safely right now (e.g. the monitor's finding). */
export class ServiceUnavailable extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_UNAVAILABLE', options)
  }
}

/**
 * 500: the request's own SQL (an explicit `BEGIN` in a one-statement request, say) left its pooled
 * connection inside a transaction. The connection was rolled back and destroyed, never reused: the
 * next request on it would have run in that transaction.
 */
export class SessionDirty extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_SESSION_DIRTY', options)
  }
}

/**
 * 500: the database failed a guarded statement for a reason that is neither the caller's input nor
 * a refusal (a server fault, a missing table). The server's message stays in `cause`: it can name
 * roles, tables or values, so it never reaches a response.
 */
export class DatabaseFault extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_DATABASE_ERROR', options)
  }
}

/**
 * 500: a stored value of an encrypted column did not open (moved to another row or column, altered,
 * or sealed with a key no longer configured). The message names the table and column, never a
 * value; the response carries the generic message only.
 */
export class DecryptionFailed extends KeyholeError {
  constructor(options: KeyholeErrorOptions = {}) {
    super('KH_DECRYPT_FAILED', options)
  }
}

/** API misuse at registration or build time: a bad option, identifier or missing policy. */
export class ConfigurationError extends KeyholeError {
  constructor(
    code:
      | 'KH_INVALID_OPTIONS'
      | 'KH_INVALID_IDENTIFIER'
      | 'KH_NO_POLICY'
      | 'KH_DISCOVERY_FAILED'
      | 'KH_JWKS_FAILED'
      | 'KH_SYSTEM_NOT_DECLARED'
      | 'KH_SYSTEM_IN_REQUEST'
      | 'KH_UNGUARDED_SQL'
      | 'KH_DATA_KEY_MISSING'
      | 'KH_ENCRYPTED_COLUMN',
    message: string,
    cause?: unknown,
  ) {
    super(code, { message, cause })
  }
}

/** One finding of the database checks: a stable code and how to fix it. */
export interface DatabaseFinding {
  readonly code: string
  readonly message: string
  readonly fix: string
}

/** The start-up checks found the database insecure; the report lists every finding. */
export class InsecureDatabase extends KeyholeError {
  readonly findings: readonly DatabaseFinding[]

  constructor(findings: readonly DatabaseFinding[]) {
    const report = findings.map((f) => `  - ${f.code}: ${f.message}\n    fix: ${f.fix}`).join('\n')
    super('KH_INSECURE_DATABASE', {
      message: `keyhole refuses to start: the database configuration is insecure (${findings.length} finding${findings.length === 1 ? '' : 's'})\n${report}`,
    })
    this.findings = Object.freeze([...findings])
  }
}

/** True for any error keyhole raised. */
export function isKeyholeError(error: unknown): error is KeyholeError {
  return error instanceof KeyholeError
}
