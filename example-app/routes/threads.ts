import type { FastifyInstance } from 'fastify'
import { requireRole } from 'keyhole/fastify'
import { NotFound } from 'keyhole'
import * as schemas from '../schemas.ts'
import { listThreads, type ThreadListQuery } from '../thread-list.ts'

interface GroupParams {
  Params: { groupId: string }
}
interface ThreadParams {
  Params: { threadId: string }
}
interface TitleBody {
  Body: { title: string }
}

/**
 * Each of these routes runs one statement: it commits with that statement, in one round trip,
 * instead of in a transaction held open until the response (keyhole's default, for handlers that
 * write more than once).
 */
const oneStatement = { keyhole: { transaction: 'statement' } } as const

/**
 * Thread routes. Group-scoped routes answer 403 through `requireRole` before any database work;
 * thread routes leave the decision to the guarded statements, which answer 404 for a thread the
 * caller cannot read and 403 for one it can read but not change.
 */
export async function threadRoutes(app: FastifyInstance): Promise<void> {
  const member = requireRole<GroupParams>('member', { group: (request) => request.params.groupId })

  // Pages, search and post counts (../thread-list.ts): a cursor lookup and one Kysely query.
  app.get<GroupParams & { Querystring: ThreadListQuery }>(
    '/groups/:groupId/threads',
    { schema: schemas.listThreads, preHandler: member, config: oneStatement },
    async (request) => listThreads(request.db, request.params.groupId, request.query),
  )

  app.post<GroupParams & TitleBody>(
    '/groups/:groupId/threads',
    { schema: schemas.createThread, preHandler: member, config: oneStatement },
    async (request, reply) => {
      const thread = await request.db.insert('discussion_threads', {
        group_id: request.params.groupId,
        title: request.body.title,
        created_by: request.requireCapability().subject,
      })
      return reply.code(201).send(thread)
    },
  )

  app.get<ThreadParams>(
    '/threads/:threadId',
    { schema: schemas.getThread, config: oneStatement },
    async (request) => {
      const [thread] = await request.db.select('discussion_threads', {
        id: request.params.threadId,
      })
      if (thread === undefined) throw new NotFound()
      return thread
    },
  )

  app.patch<ThreadParams & TitleBody>(
    '/threads/:threadId',
    { schema: schemas.updateThread, config: oneStatement },
    async (request) => {
      const { rows } = await request.db.update(
        'discussion_threads',
        { id: request.params.threadId },
        { title: request.body.title },
      )
      return rows[0]
    },
  )

  app.delete<ThreadParams>(
    '/threads/:threadId',
    { schema: schemas.deleteThread, config: oneStatement },
    async (request, reply) => {
      await request.db.delete(
        'discussion_threads',
        { id: request.params.threadId },
        { returning: [] },
      )
      return reply.code(204).send()
    },
  )
}
