/**
 * The `keyhole:decision` payloads of both adapters, built here once (see src/events.ts): codes,
 * the route pattern, the method and the subject; never the token, the URL or a claim's value.
 */
import type { Capability } from '../capability/capability.ts'
import { CapabilityDenied, type KeyholeError } from '../errors.ts'
import { decisionChannel, type DecisionEvent } from '../events.ts'

/** Where a decision was taken: the request's route pattern, method and capability. */
export interface DecisionContext {
  readonly route: string | undefined
  readonly method?: string | undefined
  readonly capability: Capability | null | undefined
}

const published = new WeakSet<KeyholeError>()

/** The route guards' 403 codes, and the check each stands for. */
const guardChecks: Partial<Record<KeyholeError['code'], DecisionEvent['check']>> = {
  KH_FORBIDDEN: 'role',
  KH_INSUFFICIENT_SCOPE: 'scope',
}

/**
 * Publishes a 401, 403 or 404 once (the same error may reach the hook that raised it and then the
 * error handler), when the channel has subscribers.
 */
export function publishRefusal(error: KeyholeError, at: DecisionContext): void {
  if (!decisionChannel.hasSubscribers) return
  const status = error.statusCode
  if ((status !== 401 && status !== 403 && status !== 404) || published.has(error)) return
  published.add(error)
  const denied = error instanceof CapabilityDenied ? error : undefined
  const event: DecisionEvent = {
    outcome: 'refused',
    check: status === 401 ? 'token' : (guardChecks[error.code] ?? 'statement'),
    statusCode: status,
    code: error.code,
    subject: at.capability?.subject ?? null,
    route: at.route ?? null,
    method: at.method ?? null,
    table: denied?.table ?? null,
    operation: denied?.operation ?? null,
  }
  decisionChannel.publish(Object.freeze(event))
}

/** Publishes an allow (the caller checked that allows are asked for), when anyone listens. */
export function publishAllow(check: 'token' | 'role' | 'scope', at: DecisionContext): void {
  if (!decisionChannel.hasSubscribers) return
  const event: DecisionEvent = {
    outcome: 'allowed',
    check,
    statusCode: null,
    code: null,
    subject: at.capability?.subject ?? null,
    route: at.route ?? null,
    method: at.method ?? null,
    table: null,
    operation: null,
  }
  decisionChannel.publish(Object.freeze(event))
}
