/**
 * The forum on Express: the same database preparation (keyhole's setup and the forum's
 * migrations, as the migration role), the same restricted runtime role, the same policies, routes
 * and answers as the Fastify forum (`app.ts`), through `keyhole/express`. Start-up checks run in
 * `listen()` before the port opens; the monitor re-runs them. (No /docs here: the OpenAPI
 * description is the Fastify forum's.)
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type ErrorRequestHandler, type RequestHandler } from 'express'
import {
  capabilities,
  keyholeErrors,
  type KeyholeLogger,
  type KeyholeMiddleware,
} from 'keyhole/express'
import { createKeyhole, NotFound, type Keyhole } from 'keyhole'
import type { BuildOptions } from '../app.ts'
import { connectDatabase } from '../database.ts'
import { logKeyholeEvents, type EventLogger } from '../events-log.ts'
import { policies } from '../policies.ts'
import { scheduleRetention, type RetentionLogger } from '../retention.ts'
import { forumRoutes } from './routes.ts'

export type ExpressBuildOptions = Omit<BuildOptions, 'logger'> & {
  /** Where keyhole logs (denials at info, monitor findings at fatal); default: its own stderr logger. */
  readonly logger?: KeyholeLogger
}

export interface ExpressForum {
  readonly app: express.Express
  readonly keyhole: KeyholeMiddleware
  /** keyhole for work outside a request (the retention job): the routes' pool and policies. */
  readonly jobs: Keyhole
  /** Runs the start-up checks (refusing on a finding), then listens; resolves to the base URL. */
  listen(port: number, host: string): Promise<string>
  /** Stops accepting, lets in-flight requests finish, stops the monitor and ends the pool. */
  close(): Promise<void>
}

const unsupportedMediaType = {
  statusCode: 415,
  error: 'Unsupported Media Type',
  message: 'Unsupported Media Type: send application/json',
  code: 'UNSUPPORTED_MEDIA_TYPE',
}

/** A JSON API: a body that is not declared JSON answers 415 before any parsing. */
const jsonOnly: RequestHandler = (req, res, next) => {
  // An empty body (Content-Length: 0) is no body: the schemas answer 400, as on Fastify.
  const empty = req.headers['content-length'] === '0'
  if (!empty && req.is('application/json') === false) {
    res.status(415).json(unsupportedMediaType)
    return
  }
  next()
}

/** body-parser's refusals, by the status it gives them, in the forum's error shape. */
const bodyParserAnswers = new Map<unknown, { statusCode: number } & Record<string, unknown>>([
  [
    400,
    {
      statusCode: 400,
      error: 'Bad Request',
      message: 'Bad request: the body is not valid JSON',
      code: 'KH_BAD_REQUEST',
    },
  ],
  [
    413,
    {
      statusCode: 413,
      error: 'Payload Too Large',
      message: 'The body is too large',
      code: 'PAYLOAD_TOO_LARGE',
    },
  ],
])

/**
 * The answers for what is not keyhole's: body-parser's errors (broken JSON: 400 `KH_BAD_REQUEST`,
 * as the Fastify forum; too large: 413) and anything unexpected (500, details to the log only).
 */
export function forumErrors(logger: KeyholeLogger | undefined): ErrorRequestHandler {
  return (error, _req, res, next) => {
    if (res.headersSent) return next(error)
    const status = (error as { status?: unknown } | null | undefined)?.status
    const answer = bodyParserAnswers.get(status)
    if (answer !== undefined) {
      res.status(answer.statusCode).json(answer)
      return
    }
    const err = error instanceof Error ? { type: error.name, message: error.message } : {}
    if (logger === undefined) {
      process.stderr.write(`${JSON.stringify({ level: 'error', err, msg: 'request failed' })}\n`)
    } else logger.error({ err }, 'request failed')
    res.status(500).json({
      statusCode: 500,
      error: 'Internal Server Error',
      message: 'Internal server error',
      code: 'INTERNAL',
    })
  }
}

/** Builds the forum on Express; `listen()` serves it, `close()` ends everything it opened. */
export async function buildExpress(options: ExpressBuildOptions): Promise<ExpressForum> {
  const database = await connectDatabase(options)
  for (const { level, message, fields } of database.log) {
    if (options.logger !== undefined) options.logger[level](fields, message)
    else process.stdout.write(`${JSON.stringify({ level, ...fields, msg: message })}\n`)
  }
  let keyhole: KeyholeMiddleware
  try {
    keyhole = capabilities({
      secret: options.jwtSecret,
      algorithms: ['HS256'],
      issuer: options.jwtIssuer,
      audience: options.jwtAudience,
      public: ['/health'],
      database: {
        pool: database.pool,
        policies,
        signingKey: database.signingKey,
        dataKeys: options.dataKeys,
      },
      checks: true,
      monitor: { intervalMs: options.monitorIntervalMs ?? 60_000 },
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    })
  } catch (error) {
    await database.pool.end()
    throw error
  }

  // Every refusal and every use of the system context, one JSON line each (stdout without a logger).
  const stdout = (level: string) => (fields: object, message: string) =>
    void process.stdout.write(`${JSON.stringify({ level, ...fields, msg: message })}\n`)
  const lines: EventLogger & RetentionLogger = options.logger ?? {
    info: stdout('info'),
    warn: stdout('warn'),
    error: stdout('error'),
  }
  const stopLogging = logKeyholeEvents(lines)
  const jobs = createKeyhole({
    pool: database.pool,
    policies,
    signingKey: database.signingKey,
    dataKeys: options.dataKeys,
  })
  const stopRetention = scheduleRetention(
    jobs,
    { retentionDays: options.retentionDays, intervalMs: options.retentionIntervalMs },
    lines,
  )

  const app = express()
  app.disable('x-powered-by')
  // keyhole first: a request without a valid token is refused before its body is even read.
  app.use(keyhole)
  app.use(jsonOnly, express.json())
  app.use(forumRoutes(() => keyhole.assertHealthy()))
  app.use(() => {
    throw new NotFound()
  })
  app.use(keyholeErrors(), forumErrors(options.logger))

  const server = createServer(app)
  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      if (server.listening) {
        server.close()
        await once(server, 'close')
      }
      stopRetention()
      stopLogging()
      await keyhole.close()
      await database.pool.end()
    })())

  return {
    app,
    keyhole,
    jobs,
    async listen(port, host) {
      try {
        // The checks first: on an insecure database the port never opens.
        await keyhole.ready({ server })
        server.listen(port, host)
        await once(server, 'listening')
      } catch (error) {
        await close()
        throw error
      }
      const address = server.address() as AddressInfo
      return `http://${address.address}:${address.port}`
    },
    close,
  }
}
