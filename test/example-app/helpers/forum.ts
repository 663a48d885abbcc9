/**
 * A running forum for one test file: a fresh database, `build()` given its superuser URL (so it runs
 * keyhole's setup and the migrations exactly as `main.ts` does, with roles named after the
 * database), two groups arranged directly with the superuser pool, and a token per cast member.
 */
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { build } from '../../../example-app/app.ts'
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

export interface Forum {
  readonly app: FastifyInstance
  readonly db: TestDatabase
  readonly settings: TokenSettings
  readonly groupA: string
  readonly groupB: string
  readonly tokens: Readonly<Record<Caller, string>>
  /** `inject` as `caller` (or with no token when `caller` is undefined). */
  request(caller: Caller | undefined, options: InjectOptions): Promise<LightMyRequestResponse>
  /** Rows in a forum table, read with the superuser pool (RLS does not hide them). */
  count(table: 'groups' | 'discussion_threads' | 'posts'): Promise<number>
  /** Inserts a thread directly (superuser), returning its id. */
  seedThread(groupId: string, createdBy: string, title?: string): Promise<string>
  /** Inserts a post directly (superuser), returning its id. */
  seedPost(threadId: string, author: string, content?: string): Promise<string>
}

export async function startForum(t: Teardown, extra: { monitorIntervalMs?: number } = {}) {
  const db = await createTestDatabase(t)
  const settings: TokenSettings = {
    jwtSecret: randomBytes(32).toString('base64url'),
    jwtIssuer: 'keyhole-example',
    jwtAudience: 'forum',
  }
  const app = await build({
    databaseUrl: db.url,
    ...settings,
    roles: { migration: `${db.prefix}_migrator`, runtime: `${db.prefix}_app` },
    monitorIntervalMs: extra.monitorIntervalMs ?? 60_000,
  })
  t.teardown(() => app.close())

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
    app,
    db,
    settings,
    groupA,
    groupB,
    tokens,
    request(caller, options) {
      const headers: Record<string, string | string[] | number | undefined> = {
        ...options.headers,
      }
      if (caller !== undefined) headers.authorization = `Bearer ${tokens[caller]}`
      return app.inject({ ...options, headers })
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
  response: LightMyRequestResponse,
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
