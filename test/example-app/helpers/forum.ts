/**
 * A running forum for one test file: a fresh database, `build()` (Fastify) or `buildExpress()`
 * given its superuser URL (so it runs keyhole's setup and the migrations exactly as `main.ts` does,
 * with roles named after the database), two groups arranged directly with the superuser pool, and
 * a token per cast member. Both forums are driven the same way, so one contract tests both: the
 * Fastify one through `inject`, the Express one over HTTP on 127.0.0.1.
 */
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { FastifyInstance, FastifyServerOptions, InjectOptions } from 'fastify'
import { dataKeys, type DataKeys } from 'keyhole'
import { build } from '../../../example-app/app.ts'
import { buildExpress } from '../../../example-app/express/app.ts'
import { signToken, type Permission, type TokenSettings } from '../../../example-app/tokens.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** Who is who: every kind of caller the HTTP contract names. */
export type Caller =
  | 'alice' // member of group A, author of the seeded thread
  | 'bob' // member of group A
  | 'mod' // moderator of group A
  | 'admin' // admin (through an entry in an unrelated group)
  | 'carol' // member of group B only
  | 'carolMod' // moderator of group B only
  | 'nobody' // a valid token with no permissions

/** The two forums: the same routes and contract through `keyhole/fastify` and `keyhole/express`. */
export const forumAdapters = ['fastify', 'express'] as const
export type ForumAdapter = (typeof forumAdapters)[number]

/** What a test reads of a response, from either forum. */
export interface ForumResponse {
  readonly statusCode: number
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>
  readonly body: string
  /** The body parsed, typed by the test (as `inject`'s response does). */
  json<T = any>(): T
}

export interface Forum {
  readonly adapter: ForumAdapter
  /** The Express forum's address (undefined for the Fastify one, driven through `inject`). */
  readonly baseUrl: string | undefined
  /** The Fastify forum (undefined for the Express one). */
  readonly app: FastifyInstance
  readonly db: TestDatabase
  readonly settings: TokenSettings
  /** The key the forum encrypts invite codes with (random, this forum only). */
  readonly dataKeys: DataKeys
  readonly groupA: string
  readonly groupB: string
  readonly tokens: Readonly<Record<Caller, string>>
  /** A request as `caller` (or with no token when `caller` is undefined). */
  request(caller: Caller | undefined, options: InjectOptions): Promise<ForumResponse>
  /** A request with this bearer token. */
  requestWith(token: string, options: InjectOptions): Promise<ForumResponse>
  /** Rows in a forum table, read with the superuser pool (RLS does not hide them). */
  count(table: 'groups' | 'discussion_threads' | 'posts'): Promise<number>
  /** Inserts a thread directly (superuser), returning its id. */
  seedThread(groupId: string, createdBy: string, title?: string): Promise<string>
  /** Inserts a post directly (superuser), returning its id. */
  seedPost(threadId: string, author: string, content?: string): Promise<string>
}

type Send = (options: InjectOptions) => Promise<ForumResponse>

/** `inject`'s options over real HTTP: an object payload is sent as JSON, as `inject` does. */
function httpSender(base: string): Send {
  return async ({ method = 'GET', url, headers = {}, payload }) => {
    const sent: Record<string, string> = {}
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) sent[name] = String(value)
    }
    let body: string | undefined
    if (typeof payload === 'string') body = payload
    else if (payload !== undefined) {
      body = JSON.stringify(payload)
      sent['content-type'] ??= 'application/json'
    }
    const response = await fetch(`${base}${String(url)}`, { method, headers: sent, body })
    const text = await response.text()
    return {
      statusCode: response.status,
      headers: Object.fromEntries(response.headers),
      body: text,
      json: () => JSON.parse(text),
    }
  }
}

export interface StartOptions {
  readonly adapter?: ForumAdapter
  readonly monitorIntervalMs?: number
  /** The Fastify forum's logger (default none). */
  readonly logger?: FastifyServerOptions['logger']
  readonly retentionDays?: number
  readonly retentionIntervalMs?: number
}

export async function startForum(t: Teardown, extra: StartOptions = {}): Promise<Forum> {
  const db = await createTestDatabase(t)
  const settings: TokenSettings = {
    jwtSecret: randomBytes(32).toString('base64url'),
    jwtIssuer: 'keyhole-example',
    jwtAudience: 'forum',
  }
  const keys = dataKeys({ current: randomBytes(32) })
  const options = {
    databaseUrl: db.url,
    ...settings,
    dataKeys: keys,
    roles: { migration: `${db.prefix}_migrator`, runtime: `${db.prefix}_app` },
    monitorIntervalMs: extra.monitorIntervalMs ?? 60_000,
    retentionDays: extra.retentionDays,
    retentionIntervalMs: extra.retentionIntervalMs,
  }
  const adapter = extra.adapter ?? 'fastify'
  let app: FastifyInstance | undefined
  let baseUrl: string | undefined
  let send: Send
  if (adapter === 'express') {
    const forum = await buildExpress(options)
    t.teardown(() => forum.close())
    baseUrl = await forum.listen(0, '127.0.0.1')
    send = httpSender(baseUrl)
  } else {
    const fastify = await build({ ...options, logger: extra.logger })
    t.teardown(() => fastify.close())
    app = fastify
    send = (options) => fastify.inject(options)
  }

  const groups = await db.pool.query<{ id: string }>(
    `INSERT INTO groups (name) VALUES ('group A'), ('group B') RETURNING id`,
  )
  const [groupA, groupB] = groups.rows.map((r) => r.id) as [string, string]
  const cast: Record<Caller, Permission[]> = {
    alice: [{ group: groupA, role: 'member' }],
    bob: [{ group: groupA, role: 'member' }],
    mod: [{ group: groupA, role: 'moderator' }],
    admin: [{ group: '00000000-0000-4000-8000-000000000000', role: 'admin' }],
    carol: [{ group: groupB, role: 'member' }],
    carolMod: [{ group: groupB, role: 'moderator' }],
    nobody: [],
  }
  const tokens = {} as Record<Caller, string>
  for (const [sub, permissions] of Object.entries(cast)) {
    tokens[sub as Caller] = await signToken(settings, { sub, permissions })
  }

  const forum: Forum = {
    adapter,
    baseUrl,
    app: app as FastifyInstance,
    db,
    settings,
    dataKeys: keys,
    groupA,
    groupB,
    tokens,
    request(caller, options) {
      const headers: Record<string, string | string[] | number | undefined> = {
        ...options.headers,
      }
      if (caller !== undefined) headers.authorization = `Bearer ${tokens[caller]}`
      return send({ ...options, headers })
    },
    requestWith(token, options) {
      return send({ ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } })
    },
    async count(table) {
      const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)
      return rows[0]?.n ?? -1
    },
    async seedThread(groupId, createdBy, title = 'seeded thread') {
      const { rows } = await db.pool.query<{ id: string }>(
        `INSERT INTO discussion_threads (group_id, created_by, title) VALUES ($1, $2, $3) RETURNING id`,
        [groupId, createdBy, title],
      )
      return rows[0]!.id
    },
    async seedPost(threadId, author, content = 'seeded post') {
      const { rows } = await db.pool.query<{ id: string }>(
        `INSERT INTO posts (thread_id, author, content) VALUES ($1, $2, $3) RETURNING id`,
        [threadId, author, content],
      )
      return rows[0]!.id
    },
  }
  return forum
}

/** Asserts an error response: its status and the body `{ statusCode, error, message, code }`. */
export function assertError(
  t: Test,
  response: ForumResponse,
  statusCode: number,
  code: string,
  message = `${statusCode} ${code}`,
): void {
  t.equal(response.statusCode, statusCode, message)
  const body = response.json() as Record<string, unknown>
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${message}: shape`)
  t.equal(body.statusCode, statusCode, `${message}: body statusCode`)
  t.equal(body.code, code, `${message}: body code`)
}

export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
