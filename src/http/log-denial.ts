/**
 * Every 401 and 403 is logged once, at info: the code, the route pattern, the subject when
 * known and, for a refused token, the reason (which check failed: `aud: …`, `typ: …`). Never the
 * token, the header, the claims or the raw URL (a URL can carry anything).
 */
import type { Capability } from '../capability/capability.ts'
import type { KeyholeError } from '../errors.ts'

/** The part of a pino-like logger this uses. */
export interface InfoLogger {
  info(details: object, message: string): void
}

const logged = new WeakSet<KeyholeError>()

/**
 * Logs `error` when it is a 401 or 403 not logged yet; the same error reaching a second place
 * (the hook that raised it, then the error handler) is logged only once.
 */
export function logDenial(
  log: InfoLogger,
  error: KeyholeError,
  route: string | undefined,
  capability: Capability | null | undefined,
): void {
  if ((error.statusCode !== 401 && error.statusCode !== 403) || logged.has(error)) return
  logged.add(error)
  // The reason names the check that failed (never a value): what a developer configuring an
  // issuer needs, and nothing the client is told.
  const reason = (error as { reason?: unknown }).reason
  log.info(
    {
      keyhole: {
        code: error.code,
        route: route ?? null,
        subject: capability?.subject ?? null,
        ...(typeof reason === 'string' ? { reason } : {}),
      },
    },
    'keyhole: request refused',
  )
}
