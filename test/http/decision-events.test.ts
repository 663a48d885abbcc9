/**
 * `keyhole:decision`: every 401, 403 and 404 refusal of both adapters is published once, with the
 * same payload (a guarded statement's refusal names its table and operation); allows only when
 * asked; no payload ever carries the token or a claim's value other than the subject.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Express } from 'express'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { requireRole as expressRole } from '../../plugins/express.ts'
import { requireRole as fastifyRole } from '../../plugins/fastify.ts'
import { channelNames, decisionChannel, type DecisionEvent } from '../../src/events.ts'
import { CapabilityDenied, Conflict, NotFound } from '../../src/errors.ts'
import { createKeyholeRuntime } from '../../src/http/keyhole-runtime.ts'
import { publishAllow, publishRefusal } from '../../src/http/publish-decision.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import * as fastifyApp from '../plugins/helpers/app.ts'
import * as expressApp from '../plugins/helpers/express-app.ts'

const k = await createKeyholeDatabase(t)
const pool = k.runtimePool(4)
const { rows } = await k.db.pool.query<{ id: number; group_id: string }>(
  'SELECT id, group_id FROM notes ORDER BY id',
)
const noteA = rows.find((r) => r.group_id === k.groupA)!.id
const noteB = rows.find((r) => r.group_id === k.groupB)!.id

const options = {
  database: { pool, policies: notesPolicies, signingKey: k.signingKey },
  checks: false as const,
}

/** Every event published while `fn` runs. */
async function recorded(fn: () => Promise<unknown>): Promise<DecisionEvent[]> {
  const events: DecisionEvent[] = []
  const listener = (event: unknown) => void events.push(event as DecisionEvent)
  subscribe(channelNames.decision, listener)
  try {
    await fn()
  } finally {
    unsubscribe(channelNames.decision, listener)
  }
  return events
}

type Send = (method: string, url: string, token?: string) => Promise<number>

interface Adapter {
  readonly name: string
  /** An app with `GET /notes`, `DELETE /notes/:id` and `GET /mod` (requireRole moderator). */
  start(t: Test, extra?: object): Promise<Send>
  mint(claims: Record<string, unknown>): Promise<string>
  /** The route pattern of a 401: Express authenticates before routing. */
  readonly routeOf401: (pattern: string) => string | null
}

const adapters: Adapter[] = [
  {
    name: 'fastify',
    async start(t, extra = {}) {
      const { app } = await fastifyApp.buildApp(
        t,
        { ...options, ...extra },
        (app: FastifyInstance) => {
          app.get('/notes', async (request) => request.db.select('notes'))
          app.post<{ Params: { groupId: string } }>('/groups/:groupId/notes', async (request) =>
            request.db.insert('notes', {
              group_id: request.params.groupId,
              owner: 'alice',
              body: 'x',
            }),
          )
          app.delete<{ Params: { id: string } }>('/notes/:id', async (request, reply) => {
            await request.db.delete('notes', { id: Number(request.params.id) })
            return reply.code(204).send()
          })
          app.get('/mod', { preHandler: fastifyRole('moderator') }, async () => 'ok')
        },
      )
      return async (method, url, token) =>
        (
          await app.inject({
            method: method as 'GET',
            url,
            headers: token === undefined ? {} : fastifyApp.bearer(token),
          })
        ).statusCode
    },
    mint: (claims) => fastifyApp.mint(claims),
    routeOf401: (pattern) => pattern,
  },
  {
    name: 'express',
    async start(t, extra = {}) {
      const { request } = await expressApp.startApp(t, { ...options, ...extra }, (app: Express) => {
        app.get('/notes', async (req, res) => void res.json(await req.db.select('notes')))
        app.post('/groups/:groupId/notes', async (req, res) => {
          const row = { group_id: req.params.groupId, owner: 'alice', body: 'x' }
          res.status(201).json(await req.db.insert('notes', row))
        })
        app.delete('/notes/:id', async (req, res) => {
          await req.db.delete('notes', { id: Number(req.params.id) })
          res.status(204).end()
        })
        app.get('/mod', expressRole('moderator'), (_req, res) => void res.send('ok'))
      })
      return async (method, url, token) =>
        (await request(method, url, token === undefined ? {} : expressApp.bearer(token))).status
    },
    mint: (claims) => expressApp.mint(claims),
    routeOf401: () => null,
  },
]

const refused = (fields: Partial<DecisionEvent>): DecisionEvent => ({
  outcome: 'refused',
  check: 'token',
  statusCode: 401,
  code: 'KH_TOKEN_MISSING',
  subject: null,
  route: null,
  method: 'GET',
  table: null,
  operation: null,
  ...fields,
})

for (const adapter of adapters) {
  t.test(`${adapter.name}: each refusal is published once, with its payload`, async (t) => {
    const send = await adapter.start(t)
    const secretClaim = 'alice-private@example.test'
    const token = await adapter.mint({
      sub: 'alice',
      email: secretClaim,
      permissions: [{ group: k.groupA, role: 'member' }],
    })
    const cases: [string, string, string, string | undefined, number, DecisionEvent | null][] = [
      [
        'no token: 401',
        'GET',
        '/notes',
        undefined,
        401,
        refused({ route: adapter.routeOf401('/notes') }),
      ],
      [
        'a forged token: 401',
        'GET',
        '/notes',
        `${token.slice(0, -4)}AAAA`,
        401,
        refused({ code: 'KH_TOKEN_SIGNATURE', route: adapter.routeOf401('/notes') }),
      ],
      [
        'requireRole: 403',
        'GET',
        '/mod',
        token,
        403,
        refused({
          check: 'role',
          statusCode: 403,
          code: 'KH_FORBIDDEN',
          subject: 'alice',
          route: '/mod',
        }),
      ],
      [
        'a guarded delete of a visible row: 403',
        'DELETE',
        `/notes/${noteA}`,
        token,
        403,
        refused({
          check: 'statement',
          statusCode: 403,
          code: 'KH_CAPABILITY_DENIED',
          subject: 'alice',
          route: '/notes/:id',
          method: 'DELETE',
          table: 'notes',
          operation: 'delete',
        }),
      ],
      [
        'a guarded insert into another group: 404',
        'POST',
        `/groups/${k.groupB}/notes`,
        token,
        404,
        refused({
          check: 'statement',
          statusCode: 404,
          code: 'KH_CAPABILITY_DENIED',
          subject: 'alice',
          route: '/groups/:groupId/notes',
          method: 'POST',
          table: 'notes',
          operation: 'insert',
        }),
      ],
      [
        'a guarded delete of another group’s row (row-level security hides it: absent)',
        'DELETE',
        `/notes/${noteB}`,
        token,
        404,
        refused({
          check: 'statement',
          statusCode: 404,
          code: 'KH_NOT_FOUND',
          subject: 'alice',
          route: '/notes/:id',
          method: 'DELETE',
        }),
      ],
      [
        'a delete of no row: 404',
        'DELETE',
        '/notes/999999',
        await adapter.mint({ sub: 'mo', permissions: [{ group: k.groupA, role: 'moderator' }] }),
        404,
        refused({
          check: 'statement',
          statusCode: 404,
          code: 'KH_NOT_FOUND',
          subject: 'mo',
          route: '/notes/:id',
          method: 'DELETE',
        }),
      ],
      ['allowed: nothing published unless asked', 'GET', '/notes', token, 200, null],
    ]
    const all: DecisionEvent[] = []
    for (const [name, method, url, bearer, status, expected] of cases) {
      const events = await recorded(async () => {
        t.equal(await send(method, url, bearer), status, `${name}: status`)
      })
      t.same(events, expected === null ? [] : [expected], name)
      for (const event of events) t.ok(Object.isFrozen(event), `${name}: frozen`)
      all.push(...events)
    }
    const text = JSON.stringify(all)
    t.notOk(text.includes(token.split('.')[2]!), 'no token (nor its signature)')
    t.notOk(text.includes(token.split('.')[1]!), 'no token payload')
    t.notOk(text.includes(secretClaim), 'no claim value')
    t.notOk(text.includes(k.groupA), 'no group ID from the permissions')
    t.notOk(text.includes(k.groupB), 'no value from the URL')
    t.notOk(text.includes(String(noteB)) && text.includes(`"id":${noteB}`), 'no row value')
  })

  t.test(`${adapter.name}: allows when asked (events: { allows: true })`, async (t) => {
    const send = await adapter.start(t, { events: { allows: true } })
    const token = await adapter.mint({
      sub: 'bob',
      permissions: [{ group: k.groupA, role: 'moderator' }],
    })
    const allowed = (fields: Partial<DecisionEvent>): DecisionEvent => ({
      ...refused({ outcome: 'allowed', statusCode: null, code: null, subject: 'bob' }),
      ...fields,
    })
    const events = await recorded(async () => {
      t.equal(await send('GET', '/mod', token), 200)
    })
    t.same(events, [
      allowed({ check: 'token', route: adapter.routeOf401('/mod') }),
      allowed({ check: 'role', route: '/mod' }),
    ])
    t.same(
      await recorded(async () => {
        t.equal(await send('GET', '/notes'), 401)
      }),
      [refused({ route: adapter.routeOf401('/notes') })],
      'refusals as ever',
    )
    t.notOk(decisionChannel.hasSubscribers, 'nobody listens between tests')
    t.equal(await send('GET', '/mod', token), 200, 'and without subscribers nothing is built')
  })
}

t.test('options: events must be { allows?: boolean }', async (t) => {
  for (const events of [true, { allows: 'yes' }, { all: true }]) {
    await t.rejects(
      fastifyApp.buildApp(t, { events } as object),
      { code: 'KH_INVALID_OPTIONS', message: /Invalid option events/ },
      JSON.stringify(events),
    )
  }
})

t.test(
  'what is unknown is null; only 401, 403 and 404 are refusals; each error once',
  async (t) => {
    const denied = new CapabilityDenied({ table: 'notes', operation: 'update', visible: true })
    const events = await recorded(async () => {
      const at = { route: undefined, capability: null }
      publishRefusal(denied, at)
      publishRefusal(denied, at)
      publishRefusal(new NotFound(), { ...at, method: 'GET' })
      publishAllow('token', at)
      const runtime = createKeyholeRuntime(
        { ...fastifyApp.baseOptions },
        {
          fatal() {},
          error() {},
          warn() {},
          info() {},
          debug() {},
        },
      )
      // Not keyhole's, or not a refusal: nothing.
      runtime.report(new Error('a handler failed'), { ...at, log: { info() {}, error() {} } })
      runtime.report(new Conflict(), { ...at, log: { info() {}, error() {} } })
    })
    const none = { subject: null, route: null, method: null }
    t.same(events, [
      {
        outcome: 'refused',
        check: 'statement',
        statusCode: 403,
        code: 'KH_CAPABILITY_DENIED',
        ...none,
        table: 'notes',
        operation: 'update',
      },
      {
        outcome: 'refused',
        check: 'statement',
        statusCode: 404,
        code: 'KH_NOT_FOUND',
        ...none,
        method: 'GET',
        table: null,
        operation: null,
      },
      {
        outcome: 'allowed',
        check: 'token',
        statusCode: null,
        code: null,
        ...none,
        table: null,
        operation: null,
      },
    ])
  },
)
