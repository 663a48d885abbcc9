/**
 * keyhole for Express 5: the `capabilities(options)` middleware sets `req.capability` (and `req.db`
 * with `database`), `requireRole` and `requireScope` guard routes, `keyholeErrors()` answers
 * keyhole's errors. The
 * decisions are the runtime's (src/http/keyhole-runtime.ts): this file holds the middleware and
 * the responses. Imports nothing from Express at run time (types only) and nothing from Fastify.
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express'
import { runInRequest } from '../src/db/request-scope.ts'
import { ConfigurationError, isKeyholeError } from '../src/errors.ts'
import type { AdapterOptions } from '../src/http/adapter-options.ts'
import { defineHeldDatabase, useStatementTransactions } from '../src/http/held-database.ts'
import { resolveLogger, stderrLogger, type KeyholeLogger } from '../src/http/keyhole-logger.ts'
import {
  answerError,
  createKeyholeRuntime,
  exposeState,
  roleCheck,
  scopeCheck,
  type KeyholeRequestFields,
  type KeyholeRuntime,
  type RuntimeLogger,
  type KeyholeState,
  type RoleOptions,
} from '../src/http/keyhole-runtime.ts'
import { publicRequestPathMatcher } from '../src/http/public-paths.ts'
import type { KeyholeOptions } from '../src/options.ts'

export type {
  AdapterOptions,
  DatabaseOptions,
  EventOptions,
  MonitorSettings,
} from '../src/http/adapter-options.ts'
export type { KeyholeLogger }

/** The token options (see `KeyholeOptions`) plus the adapter's own. */
export interface ExpressKeyholeOptions extends KeyholeOptions, AdapterOptions {
  /**
   * Where keyhole logs: denials at info, failures (5xx) at error, monitor findings at fatal. A
   * pino-shaped object (`fatal`, `error`, `warn`, `info`, `debug`). Never given a token or secret.
   * @default fatal, error and warn to stderr as one JSON line each; info and debug dropped
   */
  logger?: KeyholeLogger | undefined
}

/** What `capabilities()` returns: the middleware, with what routes and the server may ask of it. */
export interface KeyholeMiddleware extends RequestHandler, KeyholeState {
  /**
   * Awaits the key import (a bad key rejects here with `KH_INVALID_OPTIONS`; with `discovery`, a
   * discovery document that is missing or wrong with `KH_DISCOVERY_FAILED`), then runs the
   * database start-up checks and starts the monitor. Call it before `listen`: until it resolves,
   * a middleware with database checks answers 503 to every request.
   * @param options.server closed by the monitor on a finding with `onFinding: 'close'`, which
   *   also closes keyhole (as `close()`: every later request answers 503)
   * @throws InsecureDatabase `KH_INSECURE_DATABASE` listing every finding (retry once fixed);
   *   ServiceUnavailable `KH_UNAVAILABLE` after `close()`
   */
  ready(options?: { server?: { close(): unknown } }): Promise<void>
  /**
   * Stops the monitor (after a `ready()` in flight) and drops the verified-token cache; every later
   * request answers 503. keyhole never ends your pool.
   */
  close(): Promise<void>
}

declare global {
  // Express's own augmentation point (@types/express-serve-static-core): a namespace by necessity.
  namespace Express {
    interface Request extends KeyholeRequestFields {}
  }
}

/** The runtime the middleware leaves on each request for `requireRole` and `keyholeErrors`. */
const kRuntime = Symbol('keyhole.runtime')

type KeyholeRequest = Request & { [kRuntime]?: KeyholeRuntime }

const fallbackLogger = stderrLogger()

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

/** The request as keyhole reads it, whatever the route's generics. */
type AnyRequest = Request<unknown, unknown, unknown, unknown>

const runtimeOf = (req: AnyRequest) => (req as KeyholeRequest)[kRuntime]

function reportOf(req: AnyRequest, logger: RuntimeLogger) {
  return { log: logger, route: req.route?.path, method: req.method, capability: req.capability }
}

/**
 * The keyhole middleware. Verifies the bearer token of every request that reaches it and sets
 * `req.capability`, except on the `public` paths (`req.capability` is then `null`). Mount it before
 * the routes it protects, `keyholeErrors()` after them, and `cors` BEFORE it: a CORS preflight is a
 * request like any other, and without a valid token reaches no handler.
 *
 * Fail closed: with the database checks (the default with `database`), every request answers
 * 503 `KH_UNAVAILABLE` until `ready()` has resolved, and while the monitor reports a finding.
 *
 * `public`: the middleware runs before routing, so each entry is matched against `req.path`
 * (relative to the mount point) by path-to-regexp as Express 5 matches a route written the same
 * way (`'/posts/:id'`; `'/docs/*'` for `/docs` and below), under the app's `case sensitive
 * routing` and `strict routing`; nothing is decoded; other route syntax is literal.
 *
 * Synchronous: every option is validated here (`KH_INVALID_OPTIONS` naming it); the key import
 * starts here and `ready()` reports its failure; requests wait for it.
 * @example
 * const keyhole = capabilities({
 *   secret: process.env.JWT_SECRET, algorithms: ['HS256'], issuer: 'https://auth.example', audience: 'forum',
 *   public: ['/health'], database: { pool, policies, signingKey },
 * })
 * app.use(express.json(), keyhole)
 * app.get('/threads', async (req, res) => { res.json(await req.db.select('threads')) })
 * app.use(keyholeErrors())
 * await keyhole.ready({ server })
 * server.listen(3000)
 */
export function capabilities(options: ExpressKeyholeOptions): KeyholeMiddleware {
  if (typeof options !== 'object' || options === null) {
    throw invalid('Invalid options: must be an object')
  }
  const { logger: givenLogger, ...rest } = options
  const logger = resolveLogger(givenLogger)
  const runtime = createKeyholeRuntime(rest, logger)
  const isPublic = publicRequestPathMatcher(runtime.options.publicRoutes)
  const databases = runtime.databases

  const middleware = async function keyhole(req: Request, res: Response, next: NextFunction) {
    ;(req as KeyholeRequest)[kRuntime] = runtime
    req.capability = null
    req.requireCapability = runtime.requireCapability
    runtime.assertHealthy()
    if (databases !== undefined) {
      const send = (status: number, body: object) => void res.status(status).json(body)
      defineHeldDatabase(req, res, databases, { logger, send })
    }
    const caseSensitive = req.app.get('case sensitive routing') === true
    // What follows runs as request handling: a system context started there is refused unless
    // its call allows it (runAsSystem's allowInRequest).
    if (isPublic(req.path, { caseSensitive, strict: req.app.get('strict routing') === true })) {
      return runInRequest(next)
    }
    // The middleware runs before routing: no route pattern to log yet.
    req.capability = await runtime.authenticate(req, logger, undefined)
    runInRequest(next)
  }

  return Object.defineProperties(exposeState(middleware, runtime), {
    ready: {
      value({ server }: { server?: { close(): unknown } } = {}) {
        // As Fastify's close(): the server stops accepting and keyhole serves nothing any more.
        const close = server && (() => (void runtime.close(), server.close()))
        return runtime.ready(close)
      },
    },
    close: { value: () => runtime.close() },
  }) as KeyholeMiddleware
}

export default capabilities

/** The options of {@link requireRole}; `Params` are the route's path parameters. */
export interface RequireRoleOptions<Params = Request['params']> extends RoleOptions<
  Request<Params>
> {}

/**
 * What {@link requireRole} and {@link statementTransactions} return: a middleware for any route
 * whose path parameters include `Params`. Generic in the route, so that the handlers after it
 * keep the types Express infers from the path (a plain `RequestHandler` in a route's chain widens
 * them to a dictionary).
 */
export interface RouteMiddleware<Params = Request['params']> {
  <RouteParams extends Params, ResBody, ReqBody, ReqQuery, Locals extends Record<string, any>>(
    req: Request<RouteParams, ResBody, ReqBody, ReqQuery, Locals>,
    res: Response<ResBody, Locals>,
    next: NextFunction,
  ): void
}

/**
 * A middleware that answers 403 `KH_FORBIDDEN` (`insufficient_scope`) unless the holder has
 * `role` or a higher one (anywhere, or in `group(req)`), or is admin; 401 without a capability.
 * The role is checked against the hierarchy on the first request (Express has no route hook): a
 * role outside it answers 500 `KH_INVALID_OPTIONS`, logged.
 *
 * The handlers after it keep the parameters Express infers from the route's path. `group` sees
 * `req.params` as a dictionary of strings; give the parameters as the type argument to have them
 * checked (`requireRole<{ groupId: string }>(…)`), and then every route it guards must have them.
 * @example
 * app.post('/groups/:groupId/threads', requireRole('member', { group: (req) => req.params.groupId }), handler)
 */
export function requireRole<Params = Request['params']>(
  role: string,
  options: RequireRoleOptions<Params> = {},
): RouteMiddleware<Params> {
  const check = roleCheck(role, options)
  const handler = function keyholeRequireRole(
    req: Request<Params>,
    _res: Response,
    next: NextFunction,
  ) {
    const runtime = runtimeOf(req)
    // Fails closed, and says why: a guard with no keyhole in front of it refuses everything.
    if (runtime === undefined) {
      return next(
        invalid('requireRole needs the keyhole middleware (app.use(capabilities(…))) before it'),
      )
    }
    try {
      check(runtime, req, reportOf(req, runtime.logger))
    } catch (error) {
      return next(error)
    }
    next()
  }
  // Express's Request is invariant in its type parameters: the route's request, whatever its
  // body and query types, is this one at run time.
  return handler as RouteMiddleware<Params>
}

/**
 * A middleware that answers 403 `KH_INSUFFICIENT_SCOPE` unless the token carries every scope named
 * (its `scope` claim, space-separated, or `scp`), with `WWW-Authenticate: Bearer …,
 * error="insufficient_scope", scope="…"` naming them all (RFC 6750 §3.1); 401 without a
 * capability. Scopes are exact and independent of roles (an admin needs them too); compose with
 * {@link requireRole} in the route's chain. Never touches the database.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` when no scope is named, or an argument is not
 *   one scope (`'a b'`: pass several scopes as several arguments)
 * @example
 * app.post('/threads', requireScope('forum:write'), requireRole('member'), handler)
 */
export function requireScope(...scopes: [string, ...string[]]): RouteMiddleware {
  const check = scopeCheck(scopes)
  return function keyholeRequireScope(req: Request, _res: Response, next: NextFunction) {
    const runtime = runtimeOf(req)
    // Fails closed, and says why: a guard with no keyhole in front of it refuses everything.
    if (runtime === undefined) {
      return next(
        invalid('requireScope needs the keyhole middleware (app.use(capabilities(…))) before it'),
      )
    }
    try {
      check(runtime, reportOf(req, runtime.logger))
    } catch (error) {
      return next(error)
    }
    next()
  } as RouteMiddleware
}

/**
 * Routes that write at most once: `req.db`'s statements (in 'rls' mode) each commit alone, in the
 * round trip that runs them, instead of in one transaction with the response. Place it before the
 * handler, before the first use of `req.db`.
 * @example
 * app.post('/threads', statementTransactions(), async (req, res) => { res.status(201).json(await req.db.insert('threads', row)) })
 */
export function statementTransactions(): RouteMiddleware {
  return function keyholeStatementTransactions(req: Request, _res: Response, next: NextFunction) {
    if (useStatementTransactions(req)) return next()
    next(invalid('statementTransactions() must come before the first use of req.db'))
  } as RouteMiddleware
}

/**
 * The error handler for keyhole's errors: status, `WWW-Authenticate` and the
 * `{ statusCode, error, message, code }` body, as the Fastify plugin answers; 5xx with the
 * catalogue's generic message, the details to the logger at error. Every other error, and any
 * error once the headers are sent, goes on to `next(err)`. Mount it after the routes.
 * @example
 * app.use(keyholeErrors())
 * app.use(myErrorHandler) // gets everything that is not keyhole's
 */
export function keyholeErrors(): ErrorRequestHandler {
  return function keyholeErrorHandler(error: unknown, req, res, next) {
    if (!isKeyholeError(error) || res.headersSent) return next(error)
    const runtime = runtimeOf(req)
    const at = reportOf(req, runtime?.logger ?? fallbackLogger)
    const response = answerError(runtime, error, at)
    res.status(response.statusCode).set(response.headers).json(response.body)
  }
}
