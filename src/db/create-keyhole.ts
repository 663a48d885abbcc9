/**
 * keyhole without HTTP: work outside a request (a queue worker, a cron job, a webhook) runs under
 * a capability on the runtime role's pool, with the same policy-bound handle as `request.db`, the
 * same signed transaction-local capability in 'rls' mode and the same reset.
 */
import { z } from 'zod'
import type { Capability } from '../capability/capability.ts'
import { capabilityFromSpec, type CapabilitySpec } from '../capability/define-capability.ts'
import {
  deriveCapability,
  resolveCapabilityOptions,
  type CapabilityOptions,
  type ResolvedCapabilityOptions,
} from '../capability/derive.ts'
import { ConfigurationError } from '../errors.ts'
import { createCounters, snapshot, type KeyholeMetrics } from '../metrics.ts'
import type { PolicyHandle } from '../sql/policies.ts'
import { databaseShape, resolveDatabase, type DatabaseOptions } from './database-options.ts'
import { createDatabaseRunner, guardTransaction } from './database-runner.ts'
import { createSystemContext, type RunAsSystem, type SystemLogger } from './system-context.ts'

/** The options of {@link createKeyhole}: the adapters' `database` option, and the capability's. */
export interface CreateKeyholeOptions extends DatabaseOptions {
  /**
   * How capabilities are read (roles, admin role, group-ID type, claim names): give the same
   * `capability` options as the adapter, so a worker's capability means what a token's does.
   * @default the adapters' defaults (`uuid` groups, `member` < `moderator` < `admin`)
   */
  capability?: CapabilityOptions | undefined
  /**
   * Where {@link Keyhole.runAsSystem} logs each use (at info) and each refusal (at warn): a
   * pino-shaped logger. Never given a value, a row or a token.
   * @default none: the uses are still published on `keyhole:system`
   */
  logger?: SystemLogger | undefined
}

export interface Keyhole {
  /** The security mode, as stated or following from `signingKey`. */
  readonly mode: 'guard' | 'rls'
  /**
   * The capability of an explicit subject, groups and admin flag (see `defineCapability`), under
   * this keyhole's capability options.
   * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the bad field
   */
  capability(spec: CapabilitySpec): Capability
  /**
   * The capability of a token's claims (its subject and permissions claims, validated exactly as
   * a token's are: a malformed one throws 401 `KH_TOKEN_CLAIM` / `KH_TOKEN_PERMISSIONS`, roles
   * outside the hierarchy grant nothing). Nothing here verifies a signature: pass only claims
   * your application trusts, such as a job's payload that a request put there. Times (`exp`,
   * `nbf`, `iat`) are not read; the capability does not expire.
   */
  capabilityFromClaims(claims: Readonly<Record<string, unknown>>): Capability
  /**
   * Runs `work` under `capability` in one transaction on one client of the pool, and resolves to
   * what it resolves to: COMMIT when it resolves, ROLLBACK when it throws (and the error is
   * rethrown). `db` is the policy-bound handle `request.db` is: every statement guarded by the
   * table's policy and the capability. In 'rls' mode the transaction first sets the signed,
   * transaction-local capability, exactly as a request's does, and the session is reset when
   * anything but keyhole's own statements ran; in 'guard' mode it is a plain transaction.
   * `db` must not be used after `work` settles.
   * @throws what `work` throws; ServiceUnavailable `KH_UNAVAILABLE` when no connection opens or
   *   the database refuses the signed capability
   */
  run<T>(capability: Capability, work: (db: PolicyHandle) => Promise<T>): Promise<T>
  /**
   * Runs `work` in the system context: its handle crosses groups, but only on the `tables` and
   * `operations` declared, which the policies must declare for `system` (`KH_SYSTEM_NOT_DECLARED`
   * otherwise, before any SQL); anything else it asks is refused the same way. In 'rls' mode the
   * transaction carries a signed grant of exactly those tables and operations, and the RLS
   * policies admit it only where the policies declare `system`. Refused inside a request keyhole's
   * adapter is handling (`KH_SYSTEM_IN_REQUEST`) unless `allowInRequest: true`. Each use is
   * published on `keyhole:system` and logged (see `SystemContextEvent`). One transaction, as
   * {@link Keyhole.run}.
   * @example
   * // accepting an invitation: read it across groups, mark it accepted
   * const accepted = await keyhole.runAsSystem(
   *   { reason: 'accept an invitation', tables: ['invitations'], operations: ['read', 'update'] },
   *   (db) => db.update('invitations', { code }, { accepted_by: subject }),
   * )
   */
  readonly runAsSystem: RunAsSystem
  /**
   * A frozen snapshot of this keyhole's counters since it was created: `run`'s statements by
   * kind, session resets and destroyed connections (docs/events.md, "Metrics"); the decisions,
   * token cache and monitor counters are the adapters' and stay 0 here.
   */
  metrics(): KeyholeMetrics
}

const schema = z.strictObject({
  ...databaseShape,
  capability: z.record(z.string(), z.unknown()).optional(),
  logger: z
    .custom<SystemLogger>(
      (l) =>
        typeof l === 'object' &&
        l !== null &&
        typeof (l as SystemLogger).info === 'function' &&
        typeof (l as SystemLogger).warn === 'function',
      'must be a pino-shaped logger (info and warn)',
    )
    .optional(),
})

function invalid(path: string, message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `Invalid option ${path}: ${message}`)
}

/** The claims a capability is read from: the subject and the permissions, nothing else. */
function capabilityClaims(
  claims: Readonly<Record<string, unknown>>,
  options: ResolvedCapabilityOptions,
): Record<string, unknown> {
  // Not an object (a job's payload gone wrong): no subject, so KH_TOKEN_CLAIM, never a TypeError.
  const object = typeof claims === 'object' && claims !== null
  const own = (name: string) => (object && Object.hasOwn(claims, name) ? claims[name] : undefined)
  return { [options.subjectClaim]: own(options.subjectClaim), [options.claim]: own(options.claim) }
}

/**
 * Validates the options once (zod; the caller's object is not mutated) and returns the runner of
 * capabilities on `pool`.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the option; the mode is never chosen
 *   silently (see the adapters' `database.mode`)
 * @example
 * const keyhole = createKeyhole({ pool, policies, signingKey: process.env.KEYHOLE_SIGNING_KEY })
 * const alice = keyhole.capability({ subject: 'alice', groups: { member: [groupId] } })
 * const notes = await keyhole.run(alice, (db) => db.select('notes', { group_id: groupId }))
 */
export function createKeyhole(options: CreateKeyholeOptions): Keyhole {
  const parsed = schema.safeParse(options)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue
    const unknown = issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : []
    const path = [...issue.path.map(String), ...unknown].join('.')
    throw invalid(path === '' ? 'options' : path, issue.message)
  }
  const { capability: capabilityOptions, logger, ...database } = parsed.data
  const read = resolveCapabilityOptions(capabilityOptions as CapabilityOptions | undefined)
  const counters = createCounters()
  const runner = createDatabaseRunner(resolveDatabase(database, ''), counters)
  const resolved = runner.database
  const runAsSystem = createSystemContext({
    policies: resolved.policies,
    mode: resolved.mode,
    groupIdType: read.groupIdType,
    prepared: resolved.prepared,
    sessions: runner.sessions,
    transaction: (work) => guardTransaction(resolved, work, counters),
    logger,
    dataKeys: resolved.dataKeys,
  })
  return Object.freeze({
    mode: runner.database.mode,
    capability: (spec: CapabilitySpec) => capabilityFromSpec(spec, read),
    capabilityFromClaims: (claims: Readonly<Record<string, unknown>>) =>
      deriveCapability(capabilityClaims(claims, read), read).capability,
    run: runner.run,
    runAsSystem,
    metrics: () => snapshot(counters),
  })
}
