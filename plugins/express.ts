/**
 * keyhole for Express 5: `capabilities(options)` is a middleware that verifies the bearer token of
 * every non-public request and sets `req.capability`; `requireRole` guards routes; with the
 * `database` option, `req.db` is the policy-bound handle, one transaction per request in 'rls'
 * mode; `keyholeErrors()` answers keyhole's errors; `ready()` runs the start-up checks and starts
 * the monitor. Imports nothing from Express at run time (types only) and nothing from Fastify.
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express'
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
import { startDatabaseHealth } from '../src/http/database-health.ts'
import { errorResponse } from '../src/http/error-response.ts'
import { holdResponse } from '../src/http/hold-response.ts'
import { resolveLogger, stderrLogger, type KeyholeLogger } from '../src/http/keyhole-logger.ts'
import { logDenial } from '../src/http/log-denial.ts'
import { publicRequestPathMatcher } from '../src/http/public-paths.ts'
import { requestDatabases, type RequestDatabases } from '../src/http/request-database.ts'
import { tokenSource } from '../src/http/token-source.ts'
import { parseKeyholeOptions, resolveTokenOptions, type KeyholeOptions } from '../src/options.ts'
import type { PolicyHandle } from '../src/sql/policies.ts'
import { assertKeyOptions } from '../src/token/keys.ts'
import { createAuthenticator, type Authenticator } from '../src/token/authenticate.ts'

export type {
  AdapterOptions,
  DatabaseOptions,
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
export interface KeyholeMiddleware extends RequestHandler {
  /** The realm of `WWW-Authenticate`. */
  readonly realm: string
  /** The role hierarchy, lowest first. */
  readonly roles: readonly string[]
  /**
   * Whether requests are served: false before `ready()` resolved (when the database checks are
   * configured), while the monitor reports a finding, and after `close()`.
   */
  readonly healthy: boolean
  /** Throws 503 `KH_UNAVAILABLE` unless {@link KeyholeMiddleware.healthy} (for a health route). */
  assertHealthy(): void
  /** Forgets every verified token (see `Authenticator.invalidate`): for `getKey` key rotation. */
  invalidate(): void
  /**
   * Awaits the key import (a bad key rejects here with `KH_INVALID_OPTIONS`), then runs the
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
    interface Request {
      /**
       * The verified, frozen capability; `null` on public routes (and before the middleware).
       * Behind keyhole on a protected route it is never null: read it with
       * {@link Request.requireCapability} there.
       */
      capability: Capability | null
      /**
       * The capability, or 401 `KH_TOKEN_MISSING` when there is none (a public route): what a
       * protected handler reads, with no `!`.
       * @example
       * created_by: req.requireCapability().subject
       */
      requireCapability(): Capability
      /** The policy-bound handle (with the `database` option); throws 401 without a capability. */
      db: PolicyHandle
    }
  }
}

/** What the middleware leaves on each request for `requireRole` and `keyholeErrors`. */
interface Context {
  readonly realm: string
  readonly roles: readonly string[]
  readonly logger: KeyholeLogger
  readonly logDenials: boolean
}

const kContext = Symbol('keyhole.context')
const kStatement = Symbol('keyhole.statementTransactions')
const kOpened = Symbol('keyhole.dbOpened')

type KeyholeRequest = Request & {
  [kContext]?: Context
  [kStatement]?: true
  [kOpened]?: true
}

const ignore = () => {}

const fallback: Context = {
  realm: 'keyhole',
  roles: [],
  logger: stderrLogger(),
  logDenials: true,
}

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

/** The request as keyhole reads it, whatever the route's generics. */
type AnyRequest = Request<unknown, unknown, unknown, unknown>

function contextOf(req: AnyRequest): Context {
  return (req as KeyholeRequest)[kContext] ?? fallback
}

/** `req.requireCapability()`: one function for every request, reading its `this`. */
function requireCapability(this: Request): Capability {
  return presentCapability(this.capability, contextOf(this).realm)
}

function report(req: AnyRequest, error: KeyholeError): void {
  const context = contextOf(req)
  if (context.logDenials) logDenial(context.logger, error, req.route?.path, req.capability)
}

/** keyhole's answer to one of its errors: status, headers and body; 5xx generic, details logged. */
function answer(res: Response, error: KeyholeError, logger: KeyholeLogger): void {
  const response = errorResponse(error)
  if (response.internal) logger.error({ err: error }, 'keyhole: request failed')
  res.status(response.statusCode).set(response.headers).json(response.body)
}

/**
 * A COMMIT that failed (a deferred constraint, a transaction a swallowed SQL error aborted, a lost
 * connection): a 500 that says nothing more, the details to the log.
 */
function answerFailure(res: Response, error: unknown, logger: KeyholeLogger): void {
  logger.error({ err: error }, 'keyhole: the request transaction did not commit')
  res.status(500).json({
    statusCode: 500,
    error: 'Internal Server Error',
    message: 'Internal Server Error',
  })
}

/**
 * Defines `req.db`: the request's handle on first use; in 'rls' mode with request transactions,
 * the response is held at its first byte until the transaction has committed (rolled back for a
 * status of 400 or more), and a response that closes without finishing rolls back.
 */
function attachDatabase(
  req: KeyholeRequest,
  res: Response,
  databases: RequestDatabases,
  logger: KeyholeLogger,
): void {
  Object.defineProperty(req, 'db', {
    configurable: true,
    enumerable: false,
    get(): PolicyHandle {
      const mode = req[kStatement] === true ? 'statement' : 'request'
      const handle = databases.handle(req, req.capability, mode)
      if (req[kOpened] === true) return handle
      req[kOpened] = true
      if (!databases.transactional || mode === 'statement') return handle
      holdResponse(
        res,
        (statusCode) => databases.end(req, statusCode < 400),
        (error) => answerFailure(res, error, logger),
      )
      // After a finished response this finds the transaction ended: it only acts on an abort.
      // A rollback never rejects (the session destroys a client whose ROLLBACK failed); the catch
      // keeps a change there from ever becoming an unhandled rejection.
      res.once('close', () => void databases.end(req, false).catch(ignore))
      return handle
    },
  })
}

/**
 * The keyhole middleware. Verifies the bearer token of every request that reaches it and sets
 * `req.capability`, except the `public` entries (`req.capability` is then `null`), matched against
 * `req.path` (relative to where the middleware is mounted: the middleware runs before routing), as
 * Express routes (see `public` below). Mount it before the routes it protects; mount
 * `keyholeErrors()` after them. A CORS preflight is a request like any other: without a valid token
 * it reaches no handler (nor Express's automatic `OPTIONS` answer). Mount the `cors` middleware
 * BEFORE keyhole, so that it answers preflights (204 and its headers) first.
 *
 * Fail closed: with the database checks (the default with `database`), every request answers
 * 503 `KH_UNAVAILABLE` until `ready()` has resolved, so an application that forgets `ready()`
 * never serves on an unchecked database; and while the monitor reports a finding.
 *
 * `public`: each entry is matched by path-to-regexp as Express 5 matches a route written the same
 * way (`'/health'`, `'/posts/:id'`, `'/files/:name.json'`), plus `'/docs/*'` for `/docs` and
 * everything below; case-insensitive and one trailing slash tolerated unless the app's `case
 * sensitive routing` and `strict routing` say otherwise; nothing is decoded. Other route syntax
 * (`*`, `{…}`) is literal in an entry.
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
  const {
    public: publicRoutes,
    logDenials,
    database,
    checks,
    monitor: monitorOptions,
    logger: givenLogger,
    ...tokenOptions
  } = options
  const parsed = parseKeyholeOptions(tokenOptions)
  const { realm, cookie: cookieName } = resolveTokenOptions(parsed)
  // The key sources and a short secret too; only the import itself is left to ready().
  assertKeyOptions(parsed)
  const capabilityOptions = resolveCapabilityOptions(parsed.capability)
  const adapter = resolveAdapterOptions(
    { public: publicRoutes, logDenials, database, checks, monitor: monitorOptions },
    { groupIdType: capabilityOptions.groupIdType },
  )
  const logger = resolveLogger(givenLogger)
  const roles = capabilityOptions.hierarchy.roles
  const context: Context = Object.freeze({ realm, roles, logger, logDenials: adapter.logDenials })
  const isPublic = publicRequestPathMatcher(adapter.publicRoutes)
  const databases = adapter.database && requestDatabases(adapter.database, realm)

  let authenticator: Authenticator | undefined
  const authenticating = createAuthenticator(tokenOptions)
  // Handled here (a bad key fails ready() and every request), never an unhandled rejection.
  authenticating.then((value) => (authenticator = value), ignore)
  let monitor: DatabaseMonitor | undefined
  let readying: Promise<void> | undefined
  let started = adapter.checks === undefined
  let closed = false
  const serving = () => started && !closed && (monitor?.healthy ?? true)

  const middleware = async function keyhole(req: Request, res: Response, next: NextFunction) {
    const request = req as KeyholeRequest
    request[kContext] = context
    req.capability = null
    req.requireCapability = requireCapability
    if (!serving()) throw new ServiceUnavailable()
    if (databases !== undefined) attachDatabase(request, res, databases, logger)
    if (isPublicPath(req)) return next()
    try {
      const source = tokenSource(req, cookieName, realm)
      const result = await (authenticator ?? (await authenticating)).authenticate(source)
      req.capability = result.capability
      if (result.ignored > 0) {
        logger.debug(
          { keyhole: { ignored: result.ignored } },
          'keyhole: permissions with unknown roles',
        )
      }
    } catch (error) {
      if (isKeyholeError(error)) report(req, error)
      throw error
    }
    next()
  }

  function isPublicPath(req: Request): boolean {
    const app = req.app
    return isPublic(req.path, {
      caseSensitive: app.get('case sensitive routing') === true,
      strict: app.get('strict routing') === true,
    })
  }

  async function start(server: { close(): unknown } | undefined): Promise<void> {
    await authenticating
    const { database: db, checks: checkOptions } = adapter
    if (db === undefined || checkOptions === undefined) return
    if (adapter.monitor?.onFinding === 'close' && server === undefined) {
      throw invalid("Invalid option monitor.onFinding: 'close' needs ready({ server })")
    }
    monitor = await startDatabaseHealth({
      database: db,
      checks: checkOptions,
      monitor: adapter.monitor,
      logger,
      // As Fastify's close(): the server stops accepting and keyhole serves nothing any more.
      close: () => {
        void shutdown()
        return server?.close()
      },
    })
    started = true
  }

  async function shutdown(): Promise<void> {
    closed = true
    // A ready() in flight finishes first, so the monitor it starts is stopped too.
    await readying?.catch(ignore)
    await monitor?.stop()
    authenticator?.close()
  }

  return Object.defineProperties(middleware, {
    realm: { value: realm, enumerable: true },
    roles: { value: roles, enumerable: true },
    healthy: { get: serving, enumerable: true },
    assertHealthy: {
      value() {
        if (!serving()) throw new ServiceUnavailable()
      },
    },
    invalidate: { value: () => authenticator?.invalidate() },
    ready: {
      value(options: { server?: { close(): unknown } } = {}) {
        if (closed) return Promise.reject(new ServiceUnavailable({ message: 'keyhole was closed' }))
        readying ??= start(options.server).catch((error: unknown) => {
          readying = undefined
          throw error
        })
        return readying
      },
    },
    close: { value: shutdown },
  }) as KeyholeMiddleware
}

export default capabilities

/** The options of {@link requireRole}; `Params` are the route's path parameters. */
export interface RequireRoleOptions<Params = Request['params']> {
  /**
   * The group the role is needed in, from the request (usually a path parameter). The value must
   * be a group ID of the configured type: anything else answers 400 and never reaches SQL.
   */
  group?: ((req: Request<Params>) => unknown) | undefined
}

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
  const group = options.group
  assertRequireRoleArguments(role, group)
  const known = new WeakSet<Context>()
  const handler = function keyholeRequireRole(
    req: Request<Params>,
    _res: Response,
    next: NextFunction,
  ) {
    const context = (req as KeyholeRequest)[kContext]
    try {
      // Fails closed, and says why: a guard with no keyhole in front of it refuses everything.
      if (context === undefined) {
        throw invalid(
          'requireRole needs the keyhole middleware (app.use(capabilities(…))) before it',
        )
      }
      if (!known.has(context)) {
        assertRoleKnown(context.roles, role)
        known.add(context)
      }
      const resolve = group === undefined ? undefined : () => group(req)
      assertRequiredRole(req.capability, role, resolve, context.realm)
    } catch (error) {
      if (isKeyholeError(error)) report(req, error)
      return next(error)
    }
    next()
  }
  // Express's Request is invariant in its type parameters: the route's request, whatever its
  // body and query types, is this one at run time.
  return handler as RouteMiddleware<Params>
}

/**
 * Routes that write at most once: `req.db`'s statements (in 'rls' mode) each commit alone, in the
 * round trip that runs them, instead of in one transaction with the response. Place it before the
 * handler, before the first use of `req.db`.
 * @example
 * app.post('/threads', statementTransactions(), async (req, res) => { res.status(201).json(await req.db.insert('threads', row)) })
 */
export function statementTransactions(): RouteMiddleware {
  const handler = function keyholeStatementTransactions(
    req: Request,
    _res: Response,
    next: NextFunction,
  ) {
    const request = req as KeyholeRequest
    if (request[kOpened] === true) {
      return next(invalid('statementTransactions() must come before the first use of req.db'))
    }
    request[kStatement] = true
    next()
  }
  return handler as RouteMiddleware
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
    report(req, error)
    answer(res, error, contextOf(req).logger)
  }
}
