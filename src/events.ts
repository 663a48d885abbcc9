/**
 * keyhole's events on `node:diagnostics_channel` (the convention of Node, undici and Fastify; no
 * dependency): the channel names and payload shapes are public API (docs/events.md). A payload is
 * built only when the channel has subscribers, so publishing costs one property read otherwise.
 * Payloads carry codes, names and the subject: never a token, another claim's value, a row's
 * values or a database DETAIL.
 */
import { channel } from 'node:diagnostics_channel'
import type { DatabaseFinding, GuardedOperation, KeyholeErrorCode } from './errors.ts'

/** The channel names, as `diagnostics_channel.subscribe(name, listener)` takes them. */
export const channelNames = Object.freeze({
  /** Every 401, 403 and 404 refusal; every allow too with `events: { allows: true }`. */
  decision: 'keyhole:decision',
  /** Each start-up or monitor finding, and each recovery. */
  finding: 'keyhole:finding',
  /** Each use of the system context. */
  system: 'keyhole:system',
} as const)

/** The channel of {@link DecisionEvent}s. */
export const decisionChannel = channel(channelNames.decision)
/** The channel of {@link FindingEvent}s. */
export const findingChannel = channel(channelNames.finding)
/** The channel of the system context's uses. */
export const systemChannel = channel(channelNames.system)

/** One decision keyhole took on a request. Frozen. */
export interface DecisionEvent {
  /** `'refused'`: answered 401, 403 or 404; `'allowed'`: let through (only when asked). */
  readonly outcome: 'refused' | 'allowed'
  /**
   * What decided: `'token'` (authentication), `'role'` (`requireRole`), `'scope'`
   * (`requireScope`), `'statement'` (a guarded statement of `request.db`, or a 404 keyhole answered
   * for a row).
   */
  readonly check: 'token' | 'role' | 'scope' | 'statement'
  /** 401, 403 or 404 when refused; `null` when allowed. */
  readonly statusCode: 401 | 403 | 404 | null
  /** The error code when refused (`KH_TOKEN_EXPIRED`, `KH_FORBIDDEN`, …); `null` when allowed. */
  readonly code: KeyholeErrorCode | null
  /** The capability's subject, when the request had one. */
  readonly subject: string | null
  /**
   * The route pattern (`/groups/:groupId/threads`), never the URL; `null` where the adapter has
   * none yet (the Express middleware runs before routing).
   */
  readonly route: string | null
  /** The HTTP method. */
  readonly method: string | null
  /** The table of a guarded statement's refusal; `null` otherwise. */
  readonly table: string | null
  /** The operation of a guarded statement's refusal; `null` otherwise. */
  readonly operation: GuardedOperation | null
}

/** Where a finding came from. */
export type FindingSource = 'startup' | 'monitor'

/** A finding of the database checks, or the recovery after findings. Frozen. */
export type FindingEvent =
  | {
      readonly type: 'finding'
      /** `'startup'`: the checks before serving (the server refuses to start); `'monitor'`. */
      readonly source: FindingSource
      /** The finding: `code` (`KH_DB_…`), `message` and `fix`, as in the start-up report. */
      readonly finding: DatabaseFinding
    }
  | {
      /** A monitor run passed after one with findings: keyhole serves again. */
      readonly type: 'recovered'
      readonly source: 'monitor'
    }

/** Publishes one {@link FindingEvent} per finding, when anyone listens. */
export function publishFindings(source: FindingSource, findings: readonly DatabaseFinding[]): void {
  if (!findingChannel.hasSubscribers) return
  for (const finding of findings) {
    findingChannel.publish(Object.freeze({ type: 'finding', source, finding }))
  }
}

const RECOVERED: FindingEvent = Object.freeze({ type: 'recovered', source: 'monitor' })

/** Publishes the recovery, when anyone listens. */
export function publishRecovered(): void {
  if (findingChannel.hasSubscribers) findingChannel.publish(RECOVERED)
}

/**
 * Calls a user's hook with `event`; what it throws, or the promise it returns rejects with, goes
 * to `failed`, never up: a paging hook that fails must not stop the monitor or mask a finding.
 */
export function callHook<E>(
  hook: ((event: E) => unknown) | undefined,
  event: E,
  failed: (error: unknown) => void,
): void {
  if (hook === undefined) return
  try {
    const result = hook(event) as { then?: unknown } | null | undefined
    if (typeof result?.then === 'function') (result as Promise<unknown>).then(undefined, failed)
  } catch (error) {
    failed(error)
  }
}
