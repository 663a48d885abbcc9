/**
 * A keyhole error as an HTTP response: status, headers (RFC 6750's `WWW-Authenticate`) and the
 * Fastify-style body `{ statusCode, error, message, code }`. The body is the error's `toJSON()`, so
 * a denial on an invisible row is byte for byte a 404 `KH_NOT_FOUND`; no stack, cause or claim.
 */
import type { KeyholeError } from '../errors.ts'

export interface ErrorResponse {
  readonly statusCode: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: ReturnType<KeyholeError['toJSON']>
}

export function errorResponse(error: KeyholeError): ErrorResponse {
  return { statusCode: error.statusCode, headers: error.headers, body: error.toJSON() }
}
