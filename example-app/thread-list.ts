/**
 * `GET /groups/:groupId/threads`, the statements behind it, shared by the Fastify and the Express
 * forum so that both answer alike. There is no access check here: `requireRole` admitted the caller
 * to the group, and every statement runs in the request's capability transaction, where the forced
 * RLS policies (generated from `policies.ts`) show it only the threads and posts it may read.
 */
import { BadRequest, likeContains, type PolicyHandle } from 'keyhole'
import { kysely } from 'keyhole/kysely'
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
} from 'kysely'
import { listThreads as listThreadsRoute } from './schemas.ts'
import type { DB } from './tables.ts'

/**
 * The query string, as the route's schema admits it (schemas.ts `listThreads`): `limit` 1 to 100 in
 * digits, `after` a UUID in lower case, `q` at most 200 characters. {@link threadListQuery} checks
 * it again for a caller that skipped the schema.
 */
export interface ThreadListQuery {
  readonly limit?: string | undefined
  readonly after?: string | undefined
  readonly q?: string | undefined
}

/** A thread as the list answers it: the thread's own fields and its posts' count and latest. */
export interface ThreadInList {
  readonly id: string
  readonly title: string
  readonly group_id: string
  readonly created_by: string
  readonly created_at: Date
  readonly postCount: number
  /** The latest post's time (an ISO 8601 string in the JSON answer), or null without posts. */
  readonly lastPostAt: Date | null
}

export const defaultLimit = 50

// The route schema's rules (schemas.ts `listThreads`), read from it, for callers that did not go
// through the route.
const rules = listThreadsRoute.querystring.properties
const limitPattern = new RegExp(rules.limit.pattern)
const uuidPattern = new RegExp(rules.after.pattern)
const maxSearchLength = rules.q.maxLength

/**
 * `query`'s limit, once its fields are what the route's schema admits; else 400
 * `KH_BAD_REQUEST` naming the field (never echoing its value), before any SQL is built or sent.
 */
function checkedLimit(query: ThreadListQuery): number {
  const { limit, after, q } = query
  if (limit !== undefined && (typeof limit !== 'string' || !limitPattern.test(limit))) {
    throw new BadRequest({ message: 'querystring/limit must be a whole number from 1 to 100' })
  }
  if (after !== undefined && (typeof after !== 'string' || !uuidPattern.test(after))) {
    throw new BadRequest({ message: 'querystring/after must be a UUID in lower case' })
  }
  // The schema's maxLength counts characters (code points), not UTF-16 units.
  if (
    q !== undefined &&
    (typeof q !== 'string' || (q.length > maxSearchLength && [...q].length > maxSearchLength))
  ) {
    throw new BadRequest({
      message: `querystring/q must be a text of at most ${maxSearchLength} characters`,
    })
  }
  return limit === undefined ? defaultLimit : Number(limit)
}

/**
 * The list's fixed part, built once: the threads, each with its posts counted beside it (an
 * aggregate without GROUP BY is one row, 0 and NULL for a thread without posts; the policies
 * condition the posts as they do the threads). Kysely's builders are immutable, so each request
 * extends this one with its own conditions instead of building it again. Built by a Kysely that
 * only compiles (no connection: the dialect Kysely's docs show for building queries alone); each
 * request's `kysely<DB>(db)` runs what it compiles, as a prepared statement of the request's
 * transaction.
 *
 * Why not keyhole/kysely's Kysely: `kysely(db)` needs a request's handle, so it exists only inside
 * a request, and keyhole/kysely offers no Kysely that only compiles; building this part from each
 * request's `kysely<DB>(db)` would build it again on every request, for the same text. Kysely
 * plugins transform a query in the Kysely that compiles it: `plugins` given to `kysely<DB>(db, {
 * plugins })` would transform this list's rows but not its query, so an application with plugins
 * gives them to this Kysely too (the forum has none).
 */
const threadsWithActivity = new Kysely<DB>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    /* c8 ignore next -- Kysely asks for it only for db.introspection, never used by this one */
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
})
  .selectFrom('discussion_threads as t')
  .leftJoinLateral(
    (eb) =>
      eb
        .selectFrom('posts as p')
        .whereRef('p.thread_id', '=', 't.id')
        .select((eb) => [
          eb.cast<number>(eb.fn.countAll(), 'integer').as('postCount'),
          eb.fn.max('p.created_at').as('lastPostAt'),
        ])
        .as('activity'),
    (join) => join.onTrue(),
  )
  .select([
    't.id',
    't.title',
    't.group_id',
    't.created_by',
    't.created_at',
    'activity.postCount',
    'activity.lastPostAt',
  ])

/**
 * A page of the group's threads, newest first (created_at desc, id desc): at most `limit`, those
 * after the thread `after` in that order, whose title contains `q` (case-insensitive, `%` and `_`
 * literal). `after` must be a thread of this list the caller can read, else 400 `KH_BAD_REQUEST`,
 * the same answer for one that does not exist and one the caller may not see.
 */
export async function listThreads(
  db: PolicyHandle,
  groupId: string,
  query: ThreadListQuery,
): Promise<ThreadInList[]> {
  // Built first: a query string the schema would have refused is refused before any SQL is sent.
  const list = threadListQuery(groupId, query)
  if (query.after !== undefined) {
    const [cursor] = await db.select(
      'discussion_threads',
      { id: query.after, group_id: groupId },
      { columns: ['id'] },
    )
    if (cursor === undefined) {
      throw new BadRequest({ message: 'querystring/after must be a thread of this list' })
    }
  }
  // The rows are the answer as they come: pg reads both times as Dates, which each forum's JSON
  // writes as ISO 8601 strings (Fastify's serializer for the schema's date-time, Express's
  // JSON.stringify). A copy of each row with its time converted cost ~50 µs of a 50-row page.
  const { rows } = await kysely<DB>(db).executeQuery(list)
  return rows as ThreadInList[]
}

/**
 * The list's statement for `groupId` and the query string (the cursor's values read inside it).
 * The query string is checked as the route's schema checks it, for a caller that did not go
 * through the route: 400 `KH_BAD_REQUEST` naming the field otherwise, before any SQL.
 * The limit is written into the text (a number, 1 to 100, checked: digits only),
 * not sent as a parameter: the generic plan of a prepared statement assumes `LIMIT $n` returns a
 * tenth of the rows, so once a few groups held thousands of threads (an analyzed table) that plan
 * looked dearer than each execution's custom one, and every request planned the list and its
 * policies again (~250 µs of database time per request with 15 000 threads). With the number in
 * the text the generic plan wins and the statement is planned once per connection
 * (test/example-app/list-plan.test.ts).
 */
export function threadListQuery(groupId: string, query: ThreadListQuery) {
  const limit = checkedLimit(query)
  let threads = threadsWithActivity.where('t.group_id', '=', groupId)
  if (query.q !== undefined) threads = threads.where('t.title', 'ilike', likeContains(query.q))
  if (query.after !== undefined) {
    // The cursor's own values, read in the same statement: a JavaScript Date would cut
    // created_at's microseconds and skip or repeat threads.
    threads = threads.where(
      sql<boolean>`(t.created_at, t.id) < (SELECT c.created_at, c.id FROM discussion_threads c WHERE c.id = ${query.after})`,
    )
  }
  return threads.orderBy('t.created_at', 'desc').orderBy('t.id', 'desc').limit(sql.lit(limit))
}
