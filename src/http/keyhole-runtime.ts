/**
 * What both adapters do, framework-free: the options (token and adapter, validated once), the
 * authentication of a raw request, the denial log, the health state around the start-up checks
 * and the monitor, `ready`/`close`, and the checks behind `requireRole` and `requireScope`. An
 * adapter wires it into its framework's hooks (as @fastify/postgres wires its pool) and keeps only
 * the hooks and the response plumbing, so a new guard lands here once.
 */
import type { Capability } from '../capability/capability.ts'
import { resolveCapabilityOptions } from '../capability/derive.ts'
import {
  assertRequireRoleArguments,
  assertRequiredRole,
  assertRoleKnown,
  presentCapability,
} from '../capability/assert-role.ts'
import { createDatabaseRunner } from '../db/database-runner.ts'
import { assertScopes, requiredScopes } from '../capability/assert-scope.ts'
import type { DatabaseMonitor, MonitorLogger } from '../db/monitor.ts'
import {
  ConfigurationError,
  isKeyholeError,
  ServiceUnavailable,
  type KeyholeError,
} from '../errors.ts'
import type { RequestDatabase } from '../sql/policies.ts'
import { parseKeyholeOptions, resolveTokenOptions, type KeyholeOptions } from '../options.ts'
import { authenticatorOf, type Authenticator } from '../token/authenticate.ts'
import { assertKeyOptions } from '../token/keys.ts'
import {
  resolveAdapterOptions,
  type AdapterOptions,
  type ResolvedAdapterOptions,
} from './adapter-options.ts'
import { startDatabaseHealth } from './database-health.ts'
import { errorResponse, type ErrorResponse } from './error-response.ts'
import { logDenial, type InfoLogger } from './log-denial.ts'
import {
  countRefusal,
  createCounters,
  snapshot,
  type KeyholeMetrics,
  type MetricCounters,
} from '../metrics.ts'
import { publishAllow, publishRefusal, type DecisionContext } from './publish-decision.ts'
import { requestDatabases, type RequestDatabases } from './request-database.ts'
import { tokenSource, type RawRequest } from './token-source.ts'

/** The options of either adapter: the token options plus the adapter's own. */
export interface KeyholeRuntimeOptions extends KeyholeOptions, AdapterOptions {}

/** The request's logger, as keyhole writes to it (pino's `request.log`, or the adapter's logger). */
export interface RequestLogger extends InfoLogger {
  error(details: object, message: string): void
  debug(details: object, message: string): void
}

/** The adapter's logger: the request logger's levels, the monitor's `fatal`, and `warn`. */
export interface RuntimeLogger extends RequestLogger, MonitorLogger {
  warn(details: object, message: string): void
}

/**
 * What keyhole reports a decision with: where to log, the route pattern, the method, the
 * capability if any.
 */
export interface RequestReport extends DecisionContext {
  readonly log: InfoLogger & { error(details: object, message: string): void }
}

/** What keyhole adds to each request (`request` in Fastify, `req` in Express). */
export interface KeyholeRequestFields {
  /**
   * The verified, frozen capability; `null` on public routes (and before keyhole ran). Behind
   * keyhole on a protected route it is never null: read it with `requireCapability()` there.
   */
  capability: Capability | null
  /**
   * The capability, or 401 `KH_TOKEN_MISSING` when there is none (a public route): what a
   * protected handler reads, with no `!`.
   * @example
   * created_by: request.requireCapability().subject
   */
  requireCapability(): Capability
  /**
   * The policy-bound handle (with the `database` option); throws 401 without a capability. Typed by
   * the tables registered in keyhole's `Register` interface (see docs/queries.md).
   */
  db: RequestDatabase
}

/** What both adapters expose to routes and the server (`fastify.keyhole`, the Express middleware). */
export interface KeyholeState {
  /** The realm of `WWW-Authenticate`. */
  readonly realm: string
  /** The role hierarchy, lowest first. */
  readonly roles: readonly string[]
  /**
   * Whether requests are served: false before the start-up checks passed (when configured),
   * while the monitor reports a finding, and after keyhole closed.
   */
  readonly healthy: boolean
  /** Throws 503 `KH_UNAVAILABLE` unless {@link KeyholeState.healthy} (for a health route). */
  assertHealthy(): void
  /** Forgets every verified token (see `Authenticator.invalidate`): for `getKey` key rotation. */
  invalidate(): void
  /**
   * A frozen snapshot of this keyhole's counters since it was created: decisions, the token
   * cache, statements, session resets, destroyed connections, monitor runs (docs/events.md).
   */
  metrics(): KeyholeMetrics
}

export interface KeyholeRuntime extends KeyholeState {
  /** Where keyhole logs what belongs to no request (the monitor), and requests by default. */
  readonly logger: RuntimeLogger
  /** The adapter options, resolved (public routes, denial logging, database, checks, monitor). */
  readonly options: ResolvedAdapterOptions
  /** `request.db`'s handles and transactions, with the `database` option. */
  readonly databases: RequestDatabases | undefined
  /** The counters behind {@link KeyholeState.metrics}, incremented in place. */
  readonly counters: MetricCounters
  /** Resolves once the keys are imported; rejects `KH_INVALID_OPTIONS` for a key that does not. */
  imported(): Promise<void>
  /**
   * The capability of a request from its raw headers (waiting for the key import if need be); the
   * count of ignored permissions goes to `log.debug`. A refusal is reported (see
   * {@link KeyholeRuntime.report}) and thrown: 401 `KH_TOKEN_*`, 503 for a key source that is down.
   */
  authenticate(
    request: RawRequest,
    log: RequestLogger,
    route: string | undefined,
  ): Promise<Capability>
  /**
   * Logs a 401 or 403 once, at info, unless `logDenials: false`; publishes a 401, 403 or 404 once
   * on `keyhole:decision`.
   */
  report(error: unknown, at: RequestReport): void
  /**
   * Publishes a passed `requireRole` (or, with `'scope'`, `requireScope`) on `keyhole:decision`,
   * with `events: { allows: true }`.
   */
  allowed(at: RequestReport, check?: 'role' | 'scope'): void
  /**
   * `request.requireCapability()`, to set on requests as is (it reads its `this`): the capability,
   * or 401 `KH_TOKEN_MISSING` without one.
   */
  requireCapability(this: { readonly capability: Capability | null }): Capability
  /** Throws `KH_INVALID_OPTIONS` for a role outside the hierarchy (remembered once it passed). */
  assertRoleKnown(role: string): void
  /**
   * Runs the start-up checks, then the monitor, once (a failed run may be retried): until it
   * resolves, with checks, {@link KeyholeState.healthy} is false.
   * @param close what the monitor calls on a finding with `onFinding: 'close'` (required then:
   *   `KH_INVALID_OPTIONS` without it)
   * @throws InsecureDatabase `KH_INSECURE_DATABASE`; ServiceUnavailable after `close()`
   */
  ready(close: (() => unknown) | undefined): Promise<void>
  /** Stops the monitor (after a `ready()` in flight) and drops the verified-token cache. */
  close(): Promise<void>
}

const ignore = () => {}

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

/**
 * Validates every option now, synchronously (`KH_INVALID_OPTIONS` naming it), and starts the key
 * import; {@link KeyholeRuntime.imported} and `ready` report its failure.
 */
export function createKeyholeRuntime(
  options: KeyholeRuntimeOptions,
  logger: RuntimeLogger,
): KeyholeRuntime {
  if (typeof options !== 'object' || options === null) {
    throw invalid('Invalid options: must be an object')
  }
  const {
    public: publicRoutes,
    logDenials,
    database,
    checks,
    monitor: monitorOptions,
    onFinding,
    events,
    ...tokenOptions
  } = options
  const parsed = parseKeyholeOptions(tokenOptions)
  const { realm, cookie: cookieName } = resolveTokenOptions(parsed)
  // The key sources and a short secret too; only the import itself is left to ready().
  assertKeyOptions(parsed)
  const capabilityOptions = resolveCapabilityOptions(parsed.capability)
  const adapter = resolveAdapterOptions(
    {
      public: publicRoutes,
      logDenials,
      database,
      checks,
      monitor: monitorOptions,
      onFinding,
      events,
    },
    { groupIdType: capabilityOptions.groupIdType },
  )
  const roles = capabilityOptions.hierarchy.roles
  const knownRoles = new Set<string>()

  const counters = createCounters()
  // The refusals counted: the same error may reach report() twice (its hook, the error handler).
  const counted = new WeakSet<KeyholeError>()
  let authenticator: Authenticator | undefined
  const authenticating = authenticatorOf(parsed, counters)
  // Handled here (a bad key fails ready() and every request), never an unhandled rejection.
  authenticating.then((value) => (authenticator = value), ignore)
  let monitor: DatabaseMonitor | undefined
  let readying: Promise<void> | undefined
  let started = adapter.checks === undefined
  let closed = false
  const serving = () => started && !closed && (monitor?.healthy ?? true)

  const allows = adapter.events.allows

  function report(error: unknown, at: RequestReport): void {
    if (!isKeyholeError(error)) return
    const status = error.statusCode
    if ((status === 401 || status === 403 || status === 404) && !counted.has(error)) {
      counted.add(error)
      countRefusal(counters, error.code)
    }
    if (adapter.logDenials) logDenial(at.log, error, at.route, at.capability)
    publishRefusal(error, at)
  }

  async function start(close: (() => unknown) | undefined): Promise<void> {
    await authenticating
    const { database: db, checks: checkOptions } = adapter
    if (db === undefined || checkOptions === undefined) return
    // Only Express's ready() may lack a server to close (Fastify closes itself).
    if (adapter.monitor?.onFinding === 'close' && close === undefined) {
      throw invalid("Invalid option monitor.onFinding: 'close' needs ready({ server })")
    }
    monitor = await startDatabaseHealth({
      database: db,
      checks: checkOptions,
      monitor: adapter.monitor,
      logger,
      close: close as () => unknown,
      onFinding: adapter.onFinding,
      counters,
    })
    started = true
  }

  const runtime: KeyholeRuntime = {
    realm,
    roles,
    logger,
    options: adapter,
    counters,
    metrics: () => snapshot(counters),
    databases:
      adapter.database && requestDatabases(createDatabaseRunner(adapter.database, counters), realm),
    get healthy() {
      return serving()
    },
    assertHealthy() {
      if (!serving()) throw new ServiceUnavailable()
    },
    invalidate: () => authenticator?.invalidate(),
    imported: () => authenticating.then(ignore),
    async authenticate(request, log, route) {
      try {
        const source = tokenSource(request, cookieName, realm)
        const result = await (authenticator ?? (await authenticating)).authenticate(source)
        if (result.ignored > 0) {
          log.debug(
            { keyhole: { ignored: result.ignored } },
            'keyhole: permissions with unknown roles',
          )
        }
        counters.allowed++
        if (allows)
          publishAllow('token', { route, method: request.method, capability: result.capability })
        return result.capability
      } catch (error) {
        report(error, { log, route, method: request.method, capability: null })
        throw error
      }
    },
    report,
    allowed(at, check = 'role') {
      counters.allowed++
      if (allows) publishAllow(check, at)
    },
    requireCapability() {
      return presentCapability(this.capability, realm)
    },
    assertRoleKnown(role) {
      if (knownRoles.has(role)) return
      assertRoleKnown(roles, role)
      knownRoles.add(role)
    },
    ready(close) {
      if (closed) return Promise.reject(new ServiceUnavailable({ message: 'keyhole was closed' }))
      readying ??= start(close).catch((error: unknown) => {
        readying = undefined
        throw error
      })
      return readying
    },
    async close() {
      closed = true
      // A ready() in flight finishes first, so the monitor it starts is stopped too.
      await readying?.catch(ignore)
      await monitor?.stop()
      authenticator?.close()
    },
  }
  return Object.freeze(runtime)
}

/** The options of `requireRole`; `Request` is what the group resolver reads. */
export interface RoleOptions<Request> {
  /**
   * The group the role is needed in, from the request (usually a path parameter). The value must
   * be a group ID of the configured type: anything else answers 400 and never reaches SQL.
   */
  group?: ((request: Request) => unknown) | undefined
}

/**
 * The per-request check of `requireRole(role, options)`, its arguments checked now: 403
 * `KH_FORBIDDEN` unless the holder has `role` or a higher one (anywhere, or in `group(request)`),
 * or is admin; 401 without a capability; 400 for a missing or malformed group. A refusal is
 * reported through `runtime` (without one, the realm is the default and nothing is logged).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for an empty role or a non-function `group`
 */
export function roleCheck<Request>(
  role: string,
  options: RoleOptions<Request>,
): (runtime: KeyholeRuntime | undefined, request: Request, at: RequestReport) => void {
  const group = options.group
  assertRequireRoleArguments(role, group)
  return (runtime, request, at) => {
    try {
      // Known to the hierarchy: checked once per runtime (on the first request where no route
      // hook checked it at registration).
      runtime?.assertRoleKnown(role)
      const resolve = group === undefined ? undefined : () => group(request)
      assertRequiredRole(at.capability, role, resolve, runtime?.realm)
      runtime?.allowed(at)
    } catch (error) {
      runtime?.report(error, at)
      throw error
    }
  }
}

/**
 * The per-request check of `requireScope(...scopes)`, its arguments checked now: 403
 * `KH_INSUFFICIENT_SCOPE` (the challenge naming every scope required) unless the token carries all
 * of `scopes`; 401 without a capability. Never a database call. A refusal is reported through
 * `runtime` (without one, the realm is the default and nothing is logged).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for no scope, or an argument that is not one
 *   scope token
 */
export function scopeCheck(
  scopes: readonly unknown[],
): (runtime: KeyholeRuntime | undefined, at: RequestReport) => void {
  const required = requiredScopes(scopes)
  return (runtime, at) => {
    try {
      assertScopes(at.capability, required, runtime?.realm)
      runtime?.allowed(at, 'scope')
    } catch (error) {
      runtime?.report(error, at)
      throw error
    }
  }
}

const kRuntime = Symbol('keyhole.runtime')

/**
 * Defines the {@link KeyholeState} of `runtime` on `target` (`fastify.keyhole`, the Express
 * middleware): `realm`, `roles` and `healthy` enumerable, the methods not, and nothing else of the
 * runtime (its options hold the pool and the signing key) but a symbol {@link runtimeOf} reads.
 */
export function exposeState<T extends object>(
  target: T,
  runtime: KeyholeRuntime,
): T & KeyholeState {
  return Object.defineProperties(target, {
    realm: { value: runtime.realm, enumerable: true },
    roles: { value: runtime.roles, enumerable: true },
    healthy: { get: () => runtime.healthy, enumerable: true },
    assertHealthy: { value: () => runtime.assertHealthy() },
    invalidate: { value: () => runtime.invalidate() },
    metrics: { value: () => runtime.metrics() },
    [kRuntime]: { value: runtime },
  }) as T & KeyholeState
}

/** The runtime behind a target of {@link exposeState}, if it is one. */
export function runtimeOf(state: unknown): KeyholeRuntime | undefined {
  return (state as { [kRuntime]?: KeyholeRuntime } | undefined)?.[kRuntime]
}

/**
 * keyhole's answer to one of its errors (see `errorResponse`): the denial reported through
 * `runtime` (when there is one), a 5xx logged at error with its details.
 */
export function answerError(
  runtime: KeyholeRuntime | undefined,
  error: KeyholeError,
  at: RequestReport,
): ErrorResponse {
  runtime?.report(error, at)
  const response = errorResponse(error)
  if (response.internal) at.log.error({ err: error }, 'keyhole: request failed')
  return response
}
