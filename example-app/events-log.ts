/**
 * The forum's audit lines: every refusal keyhole publishes on `keyhole:decision` and every use of
 * the system context on `keyhole:system`, one structured log line each. The payloads carry codes,
 * names, counts and the subject, never a token or a row's values (docs/events.md).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { channelNames, type DecisionEvent, type SystemContextEvent } from 'keyhole'

/** What the lines are written through: pino's (Fastify's `app.log`) shape. */
export interface EventLogger {
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
}

/**
 * Subscribes `log` to keyhole's channels: a refusal at warn as `{ keyhole: { decision } }`, a
 * system context at info as `{ keyhole: { system } }` (at warn unless it committed). The channels
 * are the process's: every keyhole server in it is heard. Returns the unsubscribe.
 */
export function logKeyholeEvents(log: EventLogger): () => void {
  const onDecision = (message: unknown) => {
    const decision = message as DecisionEvent
    if (decision.outcome === 'refused') log.warn({ keyhole: { decision } }, 'keyhole: refused')
  }
  const onSystem = (message: unknown) => {
    const system = message as SystemContextEvent
    if (system.outcome === 'ok') log.info({ keyhole: { system } }, 'keyhole: system context')
    else log.warn({ keyhole: { system } }, `keyhole: system context ${system.outcome}`)
  }
  subscribe(channelNames.decision, onDecision)
  subscribe(channelNames.system, onSystem)
  return () => {
    unsubscribe(channelNames.decision, onDecision)
    unsubscribe(channelNames.system, onSystem)
  }
}
