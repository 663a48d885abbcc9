/**
 * keyhole for Express 5: `app.use(capabilities(options))` verifies the bearer token of every
 * non-public request after it and sets `req.capability`; `requireRole` guards routes; with the
 * `database` option, `req.db` is the policy-bound handle (one transaction per request in 'rls'
 * mode, committed before the response leaves); `keyholeErrors()` answers keyhole's errors exactly
 * as the Fastify plugin does; `ready()` runs the start-up checks and starts the monitor. The same
 * framework-free core as `keyhole/fastify`; nothing here loads Fastify, and Express itself is only
 * a type import.
 */
import type { ServerResponse } from 'node:http'
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express'
import type { Capability } from '../src/capability/capability.ts'
import { resolveCapabilityOptions } from '../src/capability/derive.ts'
import { assertRoleKnown, checkRole } from '../src/capability/require-role.ts'
import type { DatabaseMonitor } from '../src/db/monitor.ts'
import {
  BadRequest,
  ConfigurationError,
  errorCatalogue,
  isKeyholeError,
  ServiceUnavailable,
  type KeyholeError,
} from '../src/errors.ts'
import { resolveAdapterOptions, type AdapterOptions } from '../src/http/adapter-options.ts'
import { startDatabaseHealth } from '../src/http/database-health.ts'
import { errorResponse } from '../src/http/error-response.ts'
import { holdResponse } from '../src/http/hold-response.ts'
import { logDenial } from '../src/http/log-denial.ts'
import { publicPathMatcher } from '../src/http/public-paths.ts'
import { requestDatabases, type RequestTransactionMode } from '../src/http/request-database.ts'
import { tokenSource } from '../src/http/token-source.ts'
import { parseKeyholeOptions, resolveTokenOptions, type KeyholeOptions } from '../src/options.ts'
import type { PolicyHandle } from '../src/sql/policies.ts'
import { createAuthenticator, type Authenticator } from '../src/token/authenticate.ts'

export type {
  AdapterOptions,
  DatabaseOptions,
  MonitorSettings,
} from '../src/http/adapter-options.ts'

/** A pino-shaped logger (pino itself fits). keyhole never gives it a token or a secret. */
export interface KeyholeLogger {
  fatal(details: object, message: string): void
  error(details: object, message: string): void
  warn(details: object, message: string): void
  info(details: object, message: string): void
  debug(details: object, message: string): void
}

/** The token options (see `KeyholeOptions`) plus the adapter's own. */
export interface ExpressKeyholeOptions extends KeyholeOptions, AdapterOptions {
  /**
   * Where keyhole logs: denials at info (`logDenials`), request failures at error, the monitor's
   * findings at fatal. @default one JSON line on stderr for fatal, error and warn; nothing else
   */
  logger?: KeyholeLogger
}

/** The middleware, and what an application may ask of keyhole. */
export interface KeyholeMiddleware extends RequestHandler {
  /** The realm of `WWW-Authenticate`. */
  readonly realm: string
  /** The role hierarchy, lowest first. */
  readonly roles: readonly string[]
  /** False while the monitor reports a finding on the database. */
  readonly healthy: boolean
  /** Throws 503 `KH_UNAVAILABLE` while the monitor reports a finding (for a health route). */
  assertHealthy(): void
  /**
   * Imports the keys, runs the start-up checks and starts the monitor; call it before serving.
   * Until it resolves, with the checks on (the default with `database`), every request answers
   * 503 `KH_UNAVAILABLE`: a server that forgot it never serves an unchecked database.
   * @param options.server closed by the monitor with `onFinding: 'close'`
   * @throws InsecureDatabase `KH_INSECURE_DATABASE` listing every finding
   */
  ready(options?: { server?: { close(): unknown } }): Promise<void>
  /** Stops the monitor and drops the verified-token cache. keyhole never ends your pool. */
  close(): Promise<void>
}

declare global {
  namespace Express {
    interface Request {
      /** The verified, frozen capability; `null` on public routes and CORS preflights. */
      capability: Capability
      /** The policy-bound handle (with the `database` option); throws 401 without a capability. */
      db: PolicyHandle
    }
  }
}

/** What the middleware leaves on each request for requireRole and keyholeErrors. */
interface RequestState {
  readonly roles: readonly string[]
  readonly realm: string
  readonly logger: KeyholeLogger
  readonly logDenials: boolean
  /** How `req.db` commits ('statement' after statementTransactions()). */
  transaction: RequestTransactionMode
}

const kState = Symbol('keyhole.request')
type KeyholeRequest = Request & { [kState]?: RequestState }

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message)
}

function serializable(details: object): object {
  const err = (details as { err?: unknown }).err
  if (!(err instanceof Error)) return details
  // JSON.stringify drops an Error's own fields; keep what identifies it (no stack, no values).
  const code = (err as { code?: unknown }).code
  return { ...details, err: { type: err.name, message: err.message, code } }
}

const quiet = () => {}
const stderrLine =
  (level: string) =>
  (details: object, message: string): void => {
    process.stderr.write(
      `${JSON.stringify({ level, time: Date.now(), ...serializable(details), msg: message })}\n`,
    )
  }

/** The default logger: what needs an operator's attention, on stderr. */
const defaultLogger: KeyholeLogger = Object.freeze({
  fatal: stderrLine('fatal'),
  error: stderrLine('error'),
  warn: stderrLine('warn'),
  info: quiet,
  debug: quiet,
})

const loggerShape = ['fatal', 'error', 'warn', 'info', 'debug'] as const

function resolveLogger(logger: unknown): KeyholeLogger {
  if (logger === undefined) return defaultLogger
  const valid =
    typeof logger === 'object' &&
    logger !== null &&
    loggerShape.every((level) => typeof (logger as Record<string, unknown>)[level] === 'function')
  if (!valid) {
    throw invalid('Invalid option logger: must have fatal, error, warn, info and debug methods')
  }
  return logger as KeyholeLogger
}

function report(req: KeyholeRequest, error: KeyholeError): void {
  const state = req[kState]
  if (state?.logDenials !== true) return
  const route = req.route === undefined ? undefined : `${req.baseUrl}${String(req.route.path)}`
  logDenial(state.logger, error, route, req.capability)
}

/** A CORS preflight carries no credentials (Fetch standard): never authenticated, no data. */
const isPreflight = (req: Request) =>
  req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined

/**
 * The keyhole middleware for Express 5. Created synchronously: every option is validated here
 * (ConfigurationError `KH_INVALID_OPTIONS` naming it), exactly as the Fastify plugin validates
 * them; the keys are imported in the background and `ready()` waits for them.
 *
 * What it protects: every request that reaches it — mount it before your routes; routes added
 * before it are outside keyhole — except the `public` paths (matched against `req.path` as
 * Express matches routes) and CORS preflights, which get `req.capability === null`, so `req.db`
 * refuses them. Unknown paths need a token too, so routes cannot be probed.
 * @example
 * const keyhole = capabilities({
 *   secret: process.env.JWT_SECRET, algorithms: ['HS256'], issuer: 'https://auth.example', audience: 'forum',
 *   public: ['/health'], database: { pool, policies, signingKey },
 * })
 * app.use(keyhole, express.json())
 * app.post('/groups/:groupId/threads', requireRole('member', { group: (req) => req.params.groupId }), handler)
 * app.use(keyholeErrors())
 * await keyhole.ready({ server })
 */
export function capabilities(options: ExpressKeyholeOptions): KeyholeMiddleware {
  if (typeof options !== 'object' || options === null) {
    throw invalid('Invalid keyhole options: expected an object')
  }
  const {
    public: publicPaths,
    logDenials,
    database,
    checks,
    monitor: monitorOptions,
    logger: loggerOption,
    ...tokenOptions
  } = options
  // Everything createAuthenticator would refuse, refused now (it only adds the key import).
  const { realm, cookie: cookieName } = resolveTokenOptions(parseKeyholeOptions(tokenOptions))
  const capabilityOptions = resolveCapabilityOptions(tokenOptions.capability)
  const adapter = resolveAdapterOptions(
    { public: publicPaths, logDenials, database, checks, monitor: monitorOptions },
    { groupIdType: capabilityOptions.groupIdType },
  )
  const logger = resolveLogger(loggerOption)
  const roles = capabilityOptions.hierarchy.roles
  const isPublic = publicPathMatcher(adapter.publicRoutes)
  const databases =
    adapter.database === undefined ? undefined : requestDatabases(adapter.database, realm)

  const authenticating: Promise<Authenticator> = createAuthenticator(tokenOptions)
  // A key that fails to import is reported by ready() and by every request, never unhandled.
  authenticating.catch(quiet)

  let monitor: DatabaseMonitor | undefined
  let checked = adapter.checks === undefined
  let starting: Promise<void> | undefined
  let server: { close(): unknown } | undefined

  const attachDatabase = (
    req: KeyholeRequest,
    res: Response,
    next: NextFunction,
    state: RequestState,
  ) => {
    const dbs = databases as NonNullable<typeof databases>
    Object.defineProperty(req, 'db', {
      configurable: true,
      enumerable: false,
      get: () => dbs.handle(req, req.capability, state.transaction),
    })
    if (!dbs.transactional) return
    // COMMIT before the response leaves (a COMMIT failure becomes the response, through the error
    // handlers); any other end, including a client that went away, rolls back.
    holdResponse(
      res as unknown as ServerResponse,
      (statusCode) => dbs.end(req, statusCode < 400),
      (error) => next(error),
    )
    res.once('close', () => void dbs.end(req, false).catch(quiet))
  }

  const middleware = async function keyhole(req: Request, res: Response, next: NextFunction) {
    const request = req as KeyholeRequest
    const state: RequestState = {
      roles,
      realm,
      logger,
      logDenials: adapter.logDenials,
      transaction: 'request',
    }
    request[kState] = state
    request.capability = null as unknown as Capability
    try {
      if (!checked || monitor?.healthy === false) throw new ServiceUnavailable()
      if (!isPreflight(req) && !isPublic(req.path)) {
        const authenticator = await authenticating
        const source = tokenSource(req, cookieName, realm)
        const { capability, ignored } = await authenticator.authenticate(source)
        request.capability = capability
        if (ignored > 0)
          logger.debug({ keyhole: { ignored } }, 'keyhole: permissions with unknown roles')
      }
    } catch (error) {
      if (isKeyholeError(error)) report(request, error)
      return next(error)
    }
    if (databases !== undefined) attachDatabase(request, res, next, state)
    next()
  } as KeyholeMiddleware

  const instance = Object.defineProperties(middleware, {
    realm: { value: realm, enumerable: true },
    roles: { value: roles, enumerable: true },
    healthy: { get: () => monitor?.healthy ?? true, enumerable: true },
    assertHealthy: {
      value() {
        if (monitor?.healthy === false) throw new ServiceUnavailable()
      },
    },
    ready: {
      value(readyOptions: { server?: { close(): unknown } } = {}): Promise<void> {
        server = readyOptions.server ?? server
        starting ??= (async () => {
          await authenticating
          const { database: db, checks: checkOptions } = adapter
          if (db === undefined || checkOptions === undefined) return
          monitor = await startDatabaseHealth({
            database: db,
            checks: checkOptions,
            monitor: adapter.monitor,
            logger,
            close: () => server?.close(),
          })
          checked = true
        })()
        // A refusal can be retried once the database is fixed.
        return starting.catch((error: unknown) => {
          starting = undefined
          throw error
        })
      },
    },
    close: {
      async value() {
        await monitor?.stop()
        const authenticator = await authenticating.catch(() => undefined)
        authenticator?.close()
      },
    },
  })
  return instance
}

export interface RequireRoleOptions {
  /**
   * The group the role is needed in, from the request (usually a path parameter). The value must
   * be a group ID of the configured type: anything else answers 400 and never reaches SQL.
   */
  group?: (req: Request) => unknown
}

function stateOf(req: KeyholeRequest, what: string): RequestState {
  const state = req[kState]
  if (state === undefined) {
    // Fails closed: a guard that runs without keyhole in front of it refuses everything.
    throw invalid(`${what} needs the keyhole middleware (app.use(capabilities(...))) before it`)
  }
  return state
}

/**
 * A middleware that answers 403 `KH_FORBIDDEN` (`insufficient_scope`) unless the holder has
 * `role` or a higher one (anywhere, or in `group(req)`), or is admin; 401 without a capability.
 * The role is checked against the hierarchy on the first request (Express has no route hook).
 * @example
 * app.post('/groups/:groupId/threads', requireRole('member', { group: (req) => req.params.groupId }), handler)
 */
export function requireRole(role: string, options: RequireRoleOptions = {}): RequestHandler {
  if (typeof role !== 'string' || role === '') {
    throw invalid('requireRole: the role must be a non-empty string')
  }
  const group = options.group
  if (group !== undefined && typeof group !== 'function') {
    throw invalid('Invalid option requireRole.group: must be a function (req) => groupId')
  }
  let known: readonly string[] | undefined
  return function keyholeRequireRole(req, _res, next) {
    const request = req as KeyholeRequest
    const state = stateOf(request, 'requireRole')
    if (known !== state.roles) {
      assertRoleKnown(state.roles, role)
      known = state.roles
    }
    try {
      const capability = request.capability
      let id: unknown
      if (capability && group !== undefined) {
        id = group(req)
        // A missing group must never widen the check to "anywhere".
        if (id === undefined || id === null) {
          throw new BadRequest({ message: 'The group ID is missing' })
        }
      }
      checkRole(capability, role, id, state.realm)
    } catch (error) {
      if (isKeyholeError(error)) report(request, error)
      throw error
    }
    next()
  }
}

/**
 * A middleware for routes that write at most once: in 'rls' mode, each of the route's statements
 * commits alone, with the capability, in one round trip (instead of one transaction held until the
 * response). Put it before the handler; it must run before the first use of `req.db`.
 */
export function statementTransactions(): RequestHandler {
  return function keyholeStatementTransactions(req, _res, next) {
    stateOf(req as KeyholeRequest, 'statementTransactions').transaction = 'statement'
    next()
  }
}

/**
 * The error handler for keyhole's errors: the status, `WWW-Authenticate` and the
 * `{ statusCode, error, message, code }` body the Fastify plugin answers (5xx with the generic
 * message; the details go to the logger). Every other error, and any error once the headers are
 * sent, goes on to the next error handler. Add it after your routes.
 */
export function keyholeErrors(): ErrorRequestHandler {
  return function keyholeErrorHandler(error: unknown, req, res, next) {
    if (!isKeyholeError(error) || res.headersSent) return next(error)
    const request = req as KeyholeRequest
    report(request, error)
    const response = errorResponse(error)
    let body = response.body
    if (error.statusCode >= 500) {
      ;(request[kState]?.logger ?? defaultLogger).error({ err: error }, 'keyhole: request failed')
      body = { ...body, message: errorCatalogue[error.code].message }
    }
    res.status(response.statusCode).set(response.headers).json(body)
  }
}

export default capabilities
