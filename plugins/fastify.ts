/**
 * keyhole for Fastify: `fastify.register(capabilities, options)` verifies the bearer token of every
 * non-public request in `onRequest` and sets `request.capability`; `requireRole` guards routes;
 * with the `database` option, `request.db` is the policy-bound handle, the start-up checks run in
 * `onReady` and a monitor re-runs them. Built with fastify-plugin, so the hooks apply to every
 * route registered after it, in sibling and child plugins too.
 */
import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  preHandlerAsyncHookHandler,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import type { Capability } from '../src/capability/capability.ts'
import { resolveCapabilityOptions } from '../src/capability/derive.ts'
import {
  assertRequireRoleArguments,
  assertRoleKnown,
  assertRequiredRole,
  presentCapability,
} from '../src/capability/assert-role.ts'
import type { DatabaseMonitor } from '../src/db/monitor.ts'
import {
  ConfigurationError,
  isKeyholeError,
  ServiceUnavailable,
  type KeyholeError,
} from '../src/errors.ts'
import { resolveAdapterOptions, type AdapterOptions } from '../src/http/adapter-options.ts'
import { errorResponse } from '../src/http/error-response.ts'
import { logDenial } from '../src/http/log-denial.ts'
import { publicRoutePatternMatcher } from '../src/http/public-routes.ts'
import { startDatabaseHealth } from '../src/http/database-health.ts'
import { requestDatabases, type RequestTransactionMode } from '../src/http/request-database.ts'
import { tokenSource } from '../src/http/token-source.ts'
import type { KeyholeOptions } from '../src/options.ts'
import type { PolicyHandle } from '../src/sql/policies.ts'
import { createAuthenticator } from '../src/token/authenticate.ts'

export type {
  AdapterOptions,
  DatabaseOptions,
  MonitorSettings,
} from '../src/http/adapter-options.ts'

/** The token options (see `KeyholeOptions`) plus the adapter's own. */
export interface FastifyKeyholeOptions extends KeyholeOptions, AdapterOptions {}

/** `fastify.keyhole`: what routes may ask of keyhole. */
export interface KeyholeDecoration {
  /** The realm of `WWW-Authenticate`. */
  readonly realm: string
  /** The role hierarchy, lowest first. */
  readonly roles: readonly string[]
  /** False while the monitor reports a finding on the database. */
  readonly healthy: boolean
  /** Throws 503 `KH_UNAVAILABLE` while the monitor reports a finding (for a health route). */
  assertHealthy(): void
  /** Forgets every verified token (see `Authenticator.invalidate`): for `getKey` key rotation. */
  invalidate(): void
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The verified, frozen capability; `null` on public routes (and before keyhole's `onRequest`
     * hook). Behind keyhole on a protected route it is never null: read it with
     * {@link FastifyRequest.requireCapability} there.
     */
    capability: Capability | null
    /**
     * The capability, or 401 `KH_TOKEN_MISSING` when there is none (a public route): what a
     * protected handler reads, with no `!`.
     * @example
     * created_by: request.requireCapability().subject
     */
    requireCapability(): Capability
    /** The policy-bound handle (with the `database` option); throws 401 without a capability. */
    db: PolicyHandle
  }
  interface FastifyContextConfig {
    keyhole?: {
      /** No token needed (see the plugin's `public` option). */
      public?: boolean
      /**
       * How `request.db`'s statements commit in 'rls' mode: `'request'` (default) in one
       * transaction with the response; `'statement'` each alone, in one round trip — for routes
       * that write at most once.
       */
      transaction?: RequestTransactionMode
    }
  }
  interface FastifyInstance {
    keyhole: KeyholeDecoration
  }
}

const kRole = Symbol('keyhole.requireRole')
const kLogDenials = Symbol('keyhole.logDenials')

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

/** What `report` reads of a request, whatever the route's generics. */
interface Reported {
  readonly server: { readonly keyhole: KeyholeDecoration }
  readonly log: FastifyBaseLogger
  readonly routeOptions: { readonly url?: string | undefined }
  readonly capability: Capability | null
}

function report(request: Reported, error: KeyholeError): void {
  const keyhole = request.server.keyhole as KeyholeDecoration & { [kLogDenials]?: boolean }
  if (keyhole?.[kLogDenials] === true) {
    logDenial(request.log, error, request.routeOptions.url, request.capability)
  }
}

const plugin: FastifyPluginAsync<FastifyKeyholeOptions> = async (fastify, options) => {
  const {
    public: publicRoutes,
    logDenials,
    database,
    checks,
    monitor: monitorOptions,
    ...tokenOptions
  } = options
  const capabilityOptions = resolveCapabilityOptions(tokenOptions.capability)
  const adapter = resolveAdapterOptions(
    { public: publicRoutes, logDenials, database, checks, monitor: monitorOptions },
    { groupIdType: capabilityOptions.groupIdType },
  )
  const authenticator = await createAuthenticator(tokenOptions)
  const { realm, cookieName } = authenticator
  const roles = capabilityOptions.hierarchy.roles
  const isPublic = publicRoutePatternMatcher(adapter.publicRoutes)
  let monitor: DatabaseMonitor | undefined

  const decoration: KeyholeDecoration = {
    realm,
    roles,
    get healthy() {
      return monitor?.healthy ?? true
    },
    assertHealthy() {
      if (!decoration.healthy) throw new ServiceUnavailable()
    },
    invalidate: () => authenticator.invalidate(),
  }
  Object.defineProperty(decoration, kLogDenials, { value: adapter.logDenials })
  fastify.decorate('keyhole', decoration)
  fastify.decorateRequest('capability', null)
  fastify.decorateRequest('requireCapability', function (this: FastifyRequest) {
    return presentCapability(this.capability, realm)
  })

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const transaction = route.config?.keyhole?.transaction
    if (transaction !== undefined && transaction !== 'request' && transaction !== 'statement') {
      throw invalid(
        `Invalid route config keyhole.transaction on ${route.url}: must be 'request' or 'statement'`,
      )
    }
    // A typo in requireRole('moderater') fails at start-up, not on the first request.
    for (const hook of [route.onRequest, route.preValidation, route.preHandler].flat()) {
      const role = (hook as { [kRole]?: string } | undefined)?.[kRole]
      if (role !== undefined) assertRoleKnown(roles, role)
    }
  })

  fastify.addHook('onRequest', async function keyholeAuthenticate(request) {
    if (!decoration.healthy) throw new ServiceUnavailable()
    if (request.routeOptions.config.keyhole?.public === true) return
    if (isPublic(request.routeOptions.url)) return
    try {
      const source = tokenSource(request.raw, cookieName, realm)
      const { capability, ignored } = await authenticator.authenticate(source)
      request.capability = capability
      if (ignored > 0) {
        request.log.debug({ keyhole: { ignored } }, 'keyhole: permissions with unknown roles')
      }
    } catch (error) {
      if (isKeyholeError(error)) report(request, error)
      throw error
    }
  })

  const previous = fastify.errorHandler
  fastify.setErrorHandler(function keyholeErrorHandler(error, request, reply) {
    if (!isKeyholeError(error)) return previous.call(this, error, request, reply)
    report(request, error)
    const response = errorResponse(error)
    if (response.internal) request.log.error({ err: error }, 'keyhole: request failed')
    return reply.code(error.statusCode).headers(response.headers).send(response.body)
  })

  fastify.addHook('onClose', async () => {
    await monitor?.stop()
    authenticator.close?.()
  })

  const { database: db, checks: checkOptions } = adapter
  if (db === undefined) return
  if (checkOptions !== undefined) {
    fastify.addHook('onReady', async () => {
      monitor = await startDatabaseHealth({
        database: db,
        checks: checkOptions,
        monitor: adapter.monitor,
        logger: fastify.log,
        close: () => fastify.close(),
      })
    })
  }

  const databases = requestDatabases(db, realm)
  fastify.decorateRequest('db', {
    getter(this: FastifyRequest): PolicyHandle {
      return databases.handle(this, this.capability, this.routeOptions.config.keyhole?.transaction)
    },
  })
  if (!databases.transactional) return
  // COMMIT before the response leaves, so a client never sees success for a write that failed to
  // commit; a COMMIT failure becomes the response. Any other end rolls back.
  fastify.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload) => {
    await databases.end(request, reply.statusCode < 400)
    return payload
  })
  const rollback = (request: FastifyRequest) => databases.end(request, false)
  fastify.addHook('onResponse', rollback)
  fastify.addHook('onRequestAbort', rollback)
}

/**
 * The keyhole Fastify plugin. What it protects, on purpose:
 * - every route registered after it, in child and sibling plugins too (fastify-plugin shares its
 *   hooks with the registering scope), except the `public` ones; automatic HEAD routes exactly
 *   like their GET; the 404 handler too (401 without a token, so routes cannot be probed);
 * - CORS preflights like any request: a request without a valid token never reaches a handler.
 *   Register @fastify/cors BEFORE keyhole: its `onRequest` hook then answers every preflight
 *   (204 and its headers) before keyhole's runs; registered after, preflights answer 401.
 * keyhole's errors are answered by its error handler (status, `WWW-Authenticate`, the
 * `{ statusCode, error, message, code }` body; 5xx with the generic message, details logged);
 * every other error goes to the handler in place when keyhole was registered (Fastify prints
 * FSTWRN004 when that one was set in the same scope). A handler set later in that scope replaces
 * keyhole's: rethrow keyhole's errors from it to hand them back. Register keyhole before routes.
 * @example
 * await fastify.register(capabilities, {
 *   secret: process.env.JWT_SECRET, algorithms: ['HS256'], issuer: 'https://auth.example', audience: 'forum',
 *   public: ['/health', '/docs/*'],
 * })
 */
export const capabilities = fp(plugin, { fastify: '5.x', name: 'keyhole' })
export default capabilities

/** The options of {@link requireRole}; `Request` is the route's request type. */
export interface RequireRoleOptions<Request = FastifyRequest> {
  /**
   * The group the role is needed in, from the request (usually a path parameter). The value must
   * be a group ID of the configured type: anything else answers 400 and never reaches SQL.
   */
  group?: ((request: Request) => unknown) | undefined
}

/**
 * A preHandler that answers 403 `KH_FORBIDDEN` (`insufficient_scope`) unless the holder has `role`
 * or a higher one (anywhere, or in `group(request)`), or is admin. The role is checked against
 * the hierarchy when the route is registered after keyhole (else on the first request).
 *
 * Typed by the route it guards: in a route's options, the route's generics (`Params`, `Body`,
 * `Querystring`, …) reach `group`'s request. A guard declared apart from its routes takes them as
 * its first type argument: `requireRole<{ Params: { groupId: string } }>('member', …)`.
 * @example
 * fastify.post<{ Params: { groupId: string } }>('/groups/:groupId/threads', {
 *   preHandler: requireRole('member', { group: (request) => request.params.groupId }),
 * }, handler)
 */
export function requireRole<
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  ContextConfig = ContextConfigDefault,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  Logger extends FastifyBaseLogger = FastifyBaseLogger,
  RawServer extends RawServerBase = RawServerDefault,
  RawRequest extends RawRequestDefaultExpression<RawServer> =
    RawRequestDefaultExpression<RawServer>,
  RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
>(
  role: string,
  options: RequireRoleOptions<
    FastifyRequest<
      RouteGeneric,
      RawServer,
      RawRequest,
      SchemaCompiler,
      TypeProvider,
      ContextConfig,
      Logger
    >
  > = {},
): preHandlerAsyncHookHandler<
  RawServer,
  RawRequest,
  RawReply,
  RouteGeneric,
  ContextConfig,
  SchemaCompiler,
  TypeProvider,
  Logger
> {
  const group = options.group
  assertRequireRoleArguments(role, group)
  const hook = async function keyholeRequireRole(
    this: FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>,
    request: FastifyRequest<
      RouteGeneric,
      RawServer,
      RawRequest,
      SchemaCompiler,
      TypeProvider,
      ContextConfig,
      Logger
    >,
  ) {
    const realm = this.keyhole?.realm
    try {
      const resolve = group === undefined ? undefined : () => group(request)
      assertRequiredRole(request.capability, role, resolve, realm)
    } catch (error) {
      if (isKeyholeError(error)) report(request, error)
      throw error
    }
  }
  return Object.defineProperty(hook, kRole, { value: role })
}
