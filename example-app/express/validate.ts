/**
 * Request validation for the Express forum, from the very JSON schemas the Fastify forum registers
 * (`schemas.ts`), compiled once with Ajv in Fastify's strict settings: no coercion, no removal of
 * unknown fields, formats checked. The message names the field and the rule, never the value, in
 * the words Fastify uses (`body/title must NOT have fewer than 1 characters`).
 */
import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { NextFunction, Request, Response } from 'express'
import { BadRequest } from 'keyhole'

// ajv-formats is CommonJS: its default export arrives as the module namespace's default.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default

const ajv = addFormats(new Ajv({ coerceTypes: false, removeAdditional: false, allErrors: false }))

interface RouteSchema {
  readonly params?: object
  readonly querystring?: object
  readonly body?: object
}

function check(
  validate: ValidateFunction,
  part: 'params' | 'querystring' | 'body',
  value: unknown,
): void {
  if (validate(value)) return
  // Ajv reports at least one error when validation fails; allErrors is off, so exactly one.
  const error = (validate.errors as NonNullable<ValidateFunction['errors']>)[0] as {
    instancePath: string
    message?: string
  }
  throw new BadRequest({ message: `${part}${error.instancePath} ${String(error.message)}` })
}

/**
 * A middleware that answers 400 `KH_BAD_REQUEST` unless the path parameters, query string and
 * body match.
 * Generic in the route's parameters, so that the handlers after it keep the ones Express infers
 * from the path (a plain `RequestHandler` would widen them to a dictionary).
 */
type Validator = <Params>(req: Request<Params>, res: Response, next: NextFunction) => void

export function validate(schema: RouteSchema): Validator {
  const params = schema.params === undefined ? undefined : ajv.compile(schema.params)
  const query = schema.querystring === undefined ? undefined : ajv.compile(schema.querystring)
  const body = schema.body === undefined ? undefined : ajv.compile(schema.body)
  return function validateRequest(req, _res, next) {
    if (params !== undefined) check(params, 'params', req.params)
    if (query !== undefined) check(query, 'querystring', req.query)
    // Express 5 leaves `req.body` undefined when no body was parsed: Fastify's "must be object".
    if (body !== undefined) check(body, 'body', req.body ?? null)
    next()
  }
}
