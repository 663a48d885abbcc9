/**
 * Every 401 and 403 is logged once, at info: the code, the route pattern and the subject when
 * known. Never the token, the header, the claims or the raw URL (a URL can carry anything).
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
  log.info(
    { keyhole: { code: error.code, route: route ?? null, subject: capability?.subject ?? null } },
    'keyhole: request refused',
  )
}
