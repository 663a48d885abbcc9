/**
 * The forum as a Fastify instance: `build(options)` connects as the restricted runtime role (given
 * `runtime`, the serve step: nothing is changed) or first prepares the database from a privileged
 * URL (given `databaseUrl`, development: keyhole's setup and the forum's migrations), registers
 * keyhole (token verification, start-up checks, the monitor, the policy-bound `request.db`) and the
 * routes. `main.ts` serves it; the tests drive it through `inject`.
 */
import { STATUS_CODES } from 'node:http'
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { capabilities } from 'keyhole/fastify'
import { createKeyhole, isKeyholeError, type DataKeys, type Keyhole } from 'keyhole'
import { connectDatabase, type DatabaseChoice } from './database.ts'
import { logKeyholeEvents } from './events-log.ts'
import { policies } from './policies.ts'
import { scheduleRetention } from './retention.ts'
import { groupRoutes } from './routes/groups.ts'
import { healthRoutes } from './routes/health.ts'
import { postRoutes } from './routes/posts.ts'
import { threadRoutes } from './routes/threads.ts'
import { sharedSchemas } from './schemas.ts'
import type { TokenSettings } from './tokens.ts'

export interface BuildOptions extends TokenSettings, DatabaseChoice {
  /**
   * The keys the invite codes are encrypted with (`dataKeys({ current: KEYHOLE_DATA_KEY })`);
   * never logged. main.ts reads KEYHOLE_DATA_KEY, or in development keeps a key beside the data.
   */
  readonly dataKeys: DataKeys
  /** How often the monitor re-runs the database checks; default 60 s. */
  readonly monitorIntervalMs?: number
  readonly logger?: FastifyServerOptions['logger']
  /** Delete threads older than this many days, every `retentionIntervalMs`; undefined: never. */
  readonly retentionDays?: number | undefined
  /** How often the retention job runs; default hourly. */
  readonly retentionIntervalMs?: number | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** keyhole for work outside a request (the retention job): the routes' pool and policies. */
    jobs: Keyhole
  }
}

/** Builds the forum; close it with `app.close()`, which also stops the monitor and ends the pool. */
export async function build(options: BuildOptions): Promise<FastifyInstance> {
  const database = await connectDatabase(options)
  const app = Fastify({
    logger: options.logger ?? false,
    // Fastify's defaults would silently drop unknown fields and turn `42` into `"42"`: refuse both.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  })
  app.addHook('onClose', () => database.pool.end())
  for (const { level, message, fields } of database.log) app.log[level](fields, message)
  // Every refusal and every use of the system context, one JSON line each in the server's log.
  app.addHook('onClose', logKeyholeEvents(app.log))
  const jobs = createKeyhole({
    pool: database.pool,
    policies,
    signingKey: database.signingKey,
    dataKeys: options.dataKeys,
  })
  app.decorate('jobs', jobs)
  const retention = {
    retentionDays: options.retentionDays,
    intervalMs: options.retentionIntervalMs,
  }
  app.addHook('onClose', scheduleRetention(jobs, retention, app.log))

  try {
    for (const schema of sharedSchemas) app.addSchema(schema)
    // A JSON API: without Fastify's text/plain parser, any body that is not JSON answers 415.
    app.removeContentTypeParser('text/plain')
    // An empty body sent as JSON (a DELETE with `content-type: application/json`) is no body, as
    // on Express; Fastify's own parser answers it 400. Anything else parses as Fastify's would.
    const json = app.getDefaultJsonParser('error', 'error')
    app.removeContentTypeParser('application/json')
    app.addContentTypeParser(
      'application/json',
      { parseAs: 'string' },
      (request, body: string, done) => {
        if (body === '') done(null, undefined)
        else json(request, body, done)
      },
    )

    await app.register(swagger, {
      // Name the shared schemas (Thread, Post, …) after their $id in the description.
      refResolver: { buildLocalReference: (json) => String(json.$id) },
      openapi: {
        info: {
          title: 'keyhole example forum',
          description: 'Groups, discussion threads and posts, guarded by capability tokens.',
          version: '1.0.0',
        },
        components: {
          securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        },
      },
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })

    await app.register(capabilities, {
      secret: options.jwtSecret,
      algorithms: ['HS256'],
      issuer: options.jwtIssuer,
      audience: options.jwtAudience,
      public: ['/health', '/docs/*'],
      database: {
        pool: database.pool,
        policies,
        signingKey: database.signingKey,
        dataKeys: options.dataKeys,
      },
      checks: true,
      monitor: { intervalMs: options.monitorIntervalMs ?? 60_000 },
    })

    // The routes get their own scope, so that their error handler does not override keyhole's
    // (Fastify warns FSTWRN004 when one scope sets two); keyhole's errors are handed back to it.
    await app.register(async (forum) => {
      forum.setErrorHandler(errorHandler)
      await forum.register(healthRoutes)
      await forum.register(groupRoutes)
      await forum.register(threadRoutes)
      await forum.register(postRoutes)
    })
    await app.ready()
  } catch (error) {
    await app.close()
    throw error
  }
  return app
}

/**
 * One error shape, `{ statusCode, error, message, code }`, for Fastify's errors as for keyhole's
 * (which are rethrown: keyhole's own handler, one scope up, answers them).
 * Every malformed request (schema validation, broken or empty JSON) answers 400 with the code
 * `KH_BAD_REQUEST`; the message names the field, never its value. Other client errors Fastify
 * raises (413, 415) keep their status and Fastify's code.
 */
function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (isKeyholeError(error)) throw error
  const status = error.statusCode ?? 500
  if (status === 400) {
    return reply.code(400).send({
      statusCode: 400,
      error: 'Bad Request',
      message: error.validation ? error.message : 'Bad request: the body is not valid JSON',
      code: 'KH_BAD_REQUEST',
    })
  }
  if (status > 400 && status < 500) {
    return reply.code(status).send({
      statusCode: status,
      // Only 4xx statuses reach here (validation, parsing): each has a reason phrase.
      error: STATUS_CODES[status] as string,
      message: error.message,
      code: error.code,
    })
  }
  request.log.error({ err: error }, 'request failed')
  return reply.code(500).send({
    statusCode: 500,
    error: 'Internal Server Error',
    message: 'Internal server error',
    code: 'INTERNAL',
  })
}
