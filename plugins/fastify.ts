/**
 * keyhole for Fastify: `fastify.register(capabilities, options)` verifies the bearer token of every
 * non-public request in `onRequest` and sets `request.capability`; `requireRole` and
 * `requireScope` guard routes; with the `database` option, `request.db` is the policy-bound
 * handle, the start-up checks run in `onReady` and a monitor re-runs them. Built with fastify-plugin, so the hooks apply to every
 * route registered after it, in sibling and child plugins too.
 */
import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  HookHandlerDoneFunction,
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
import { runInRequest } from '../src/db/request-scope.ts'
import { isKeyholeError } from '../src/errors.ts'
import type { AdapterOptions } from '../src/http/adapter-options.ts'
import {
  answerError,
  createKeyholeRuntime,
  exposeState,
  roleCheck,
  runtimeOf,
  scopeCheck,
  type KeyholeRequestFields,
  type KeyholeState,
  type RoleOptions,
} from '../src/http/keyhole-runtime.ts'
import { publicRoutePatternMatcher } from '../src/http/public-routes.ts'
import { assertTransactionMode, type RequestTransactionMode } from '../src/http/request-database.ts'
import type { KeyholeOptions } from '../src/options.ts'
import type { PolicyHandle } from '../src/sql/policies.ts'

export type {
  AdapterOptions,
  DatabaseOptions,
  EventOptions,
  MonitorSettings,
} from '../src/http/adapter-options.ts'

/** The token options (see `KeyholeOptions`) plus the adapter's own. */
export interface FastifyKeyholeOptions extends KeyholeOptions, AdapterOptions {}

/** `fastify.keyhole`: what routes may ask of keyhole. */
export interface KeyholeDecoration extends KeyholeState {}

declare module 'fastify' {
  interface FastifyRequest extends KeyholeRequestFields {}
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
const plugin: FastifyPluginAsync<FastifyKeyholeOptions> = async (fastify, options) => {
  const runtime = createKeyholeRuntime(options, fastify.log)
  await runtime.imported()
  const { databases } = runtime
  const isPublic = publicRoutePatternMatcher(runtime.options.publicRoutes)

  fastify.decorate('keyhole', exposeState({}, runtime))
  fastify.decorateRequest('capability', null)
  fastify.decorateRequest('requireCapability', runtime.requireCapability)

  fastify.addHook('onRoute', (route: RouteOptions) => {
    assertTransactionMode(route.config?.keyhole?.transaction, route.url)
    // A typo in requireRole('moderater') fails at start-up, not on the first request.
    for (const hook of [route.onRequest, route.preValidation, route.preHandler].flat()) {
      const role = (hook as { [kRole]?: string } | undefined)?.[kRole]
      if (role !== undefined) runtime.assertRoleKnown(role)
    }
  })

  // Every hook and handler after this one runs as request handling: a system context started
  // there is refused unless its call allows it (runAsSystem's allowInRequest).
  fastify.addHook('onRequest', (_request, _reply, done) => runInRequest(() => done()))

  fastify.addHook('onRequest', async function keyholeAuthenticate(request) {
    runtime.assertHealthy()
    if (request.routeOptions.config.keyhole?.public === true) return
    if (isPublic(request.routeOptions.url)) return
    request.capability = await runtime.authenticate(
      request.raw,
      request.log,
      request.routeOptions.url,
    )
  })

  const previous = fastify.errorHandler
  fastify.setErrorHandler(function keyholeErrorHandler(error, request, reply) {
    if (!isKeyholeError(error)) return previous.call(this, error, request, reply)
    const response = answerError(runtimeOf(request.server.keyhole), error, reportOf(request))
    return reply.code(error.statusCode).headers(response.headers).send(response.body)
  })

  fastify.addHook('onReady', () => runtime.ready(() => fastify.close()))
  fastify.addHook('onClose', () => runtime.close())

  if (databases === undefined) return
  fastify.decorateRequest('db', {
    getter(this: FastifyRequest): PolicyHandle {
      return databases.handle(this, this.capability, this.routeOptions.config.keyhole?.transaction)
    },
  })
  if (!databases.transactional) return
  // COMMIT before the response leaves, so a client never sees success for a write that failed to
  // commit; a COMMIT failure becomes the response. Any other end rolls back.
  // Callback hooks, so that a request without a transaction to end (a public route, one of
  // `transaction: 'statement'`) costs no promise.
  fastify.addHook('onSend', (request: FastifyRequest, reply: FastifyReply, payload, done) => {
    if (!databases.pending(request)) return done(null, payload)
    databases.end(request, reply.statusCode < 400).then(() => done(null, payload), done)
  })
  // Roll back what a response that skipped onSend (reply.hijack()) or an aborted request left open.
  const rollback = (request: FastifyRequest, done: HookHandlerDoneFunction) => {
    if (!databases.pending(request)) return done()
    databases.end(request, false).then(() => done(), done)
  }
  fastify.addHook('onResponse', (request, _reply, done) => rollback(request, done))
  fastify.addHook('onRequestAbort', rollback)
}

/** What a denial report reads of a request, whatever the route's generics. */
function reportOf(request: {
  readonly log: FastifyBaseLogger
  readonly method: string
  readonly routeOptions: { readonly url?: string | undefined }
  readonly capability: Capability | null
}) {
  const { log, method, capability } = request
  return { log, route: request.routeOptions.url, method, capability }
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
export interface RequireRoleOptions<Request = FastifyRequest> extends RoleOptions<Request> {}

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
  const check = roleCheck(role, options)
  const hook = async function keyholeRequireRole(
    this: { keyhole?: KeyholeDecoration },
    request: Parameters<NonNullable<typeof options.group>>[0],
  ) {
    check(runtimeOf(this.keyhole), request, reportOf(request))
  }
  return Object.defineProperty(hook, kRole, { value: role })
}

/**
 * A preHandler that answers 403 `KH_INSUFFICIENT_SCOPE` unless the token carries every scope named
 * (its `scope` claim, space-separated, or `scp`), with `WWW-Authenticate: Bearer …,
 * error="insufficient_scope", scope="…"` naming them all (RFC 6750 §3.1); 401 without a
 * capability. Scopes are exact and independent of roles (an admin needs them too); compose with
 * {@link requireRole} in a preHandler list. Never touches the database.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` when no scope is named, or an argument is not
 *   one scope (`'a b'`: pass several scopes as several arguments)
 * @example
 * fastify.post('/threads', {
 *   preHandler: [requireScope('forum:write'), requireRole('member')],
 * }, handler)
 */
export function requireScope<
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
  ...scopes: [string, ...string[]]
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
  const check = scopeCheck(scopes)
  return async function keyholeRequireScope(
    this: { keyhole?: KeyholeDecoration },
    request: Parameters<typeof reportOf>[0],
  ) {
    check(runtimeOf(this.keyhole), reportOf(request))
  }
}
