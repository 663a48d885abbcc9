/**
 * A keyhole error as an HTTP response: status, headers (RFC 6750's `WWW-Authenticate`) and the
 * Fastify-style body `{ statusCode, error, message, code }`. The body is the error's `toJSON()`, so
 * a denial on an invisible row is byte for byte a 404 `KH_NOT_FOUND`; no stack, cause or claim. A
 * 5xx (a configuration or database fault) carries the catalogue's generic message only: its
 * details are for the log, which `internal` tells the adapter to write.
 */
import { errorCatalogue, type KeyholeError } from '../errors.ts'

export interface ErrorResponse {
  readonly statusCode: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: ReturnType<KeyholeError['toJSON']>
  /** A fault on our side: log the error (with its details) at error. */
  readonly internal: boolean
}

export function errorResponse(error: KeyholeError): ErrorResponse {
  const internal = error.statusCode >= 500
  const body = error.toJSON()
  return {
    statusCode: error.statusCode,
    headers: error.headers,
    body: internal ? { ...body, message: errorCatalogue[error.code].message } : body,
    internal,
  }
}
