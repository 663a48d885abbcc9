/**
 * The forum fixture for the SQL tests: a fresh database with test/fixtures/forum-schema.sql, a few
 * groups, and the guards of the forum's policy.
 */
import { readFile } from 'node:fs/promises'
import type pg from 'pg'
import { createTestDatabase, type TestDatabase } from './database.ts'
import { inGroup, isSubject, or, and, viaParent } from '../../src/sql/guard.ts'

const schema = new URL('../fixtures/forum-schema.sql', import.meta.url)

export const G1 = '00000000-0000-4000-8000-000000000001'
export const G2 = '00000000-0000-4000-8000-000000000002'
export const G3 = '00000000-0000-4000-8000-000000000003'
export const GROUPS = [G1, G2, G3] as const

export interface Forum extends TestDatabase {
  /** Inserts a thread as the superuser; returns its id. */
  thread(group: string, title?: string, createdBy?: string): Promise<string>
  post(thread: string, content?: string, author?: string): Promise<string>
  comment(post: string, body?: string, author?: string): Promise<string>
  /** Rows of `sql`, read as the superuser (bypassing every guard). */
  rows<R extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    values?: unknown[],
  ): Promise<R[]>
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export async function createForum(t: Teardown): Promise<Forum> {
  const db = await createTestDatabase(t)
  await db.pool.query(await readFile(schema, 'utf8'))
  for (const [i, id] of GROUPS.entries()) {
    await db.pool.query('INSERT INTO groups (id, name) VALUES ($1, $2)', [id, `group ${i + 1}`])
  }
  const one = async (sql: string, values: unknown[]) =>
    ((await db.pool.query<{ id: string }>(sql, values)).rows[0] as { id: string }).id
  return {
    ...db,
    thread: (group, title = 'a thread', createdBy = 'user-1') =>
      one(
        'INSERT INTO discussion_threads (group_id, title, created_by) VALUES ($1, $2, $3) RETURNING id',
        [group, title, createdBy],
      ),
    post: (thread, content = 'a post', author = 'user-1') =>
      one('INSERT INTO posts (thread_id, content, author) VALUES ($1, $2, $3) RETURNING id', [
        thread,
        content,
        author,
      ]),
    comment: (post, body = 'a comment', author = 'user-1') =>
      one('INSERT INTO comments (post_id, body, author) VALUES ($1, $2, $3) RETURNING id', [
        post,
        body,
        author,
      ]),
    rows: async (sql, values) => (await db.pool.query(sql, values)).rows,
  }
}

/** The forum's guards. */
export const member = inGroup('group_id', 'member')
export const moderator = inGroup('group_id', 'moderator')
export const threadLink = {
  table: 'discussion_threads',
  key: 'id',
  column: 'thread_id',
  groupColumn: 'group_id',
}
export const postMember = viaParent(threadLink, 'member')
export const postModerator = viaParent(threadLink, 'moderator')
/** comment → post → thread → group */
export const commentMember = viaParent(
  { table: 'posts', key: 'id', column: 'post_id', groupColumn: threadLink },
  'member',
)
export const authorOrModerator = or(and(isSubject('created_by'), member), moderator)
