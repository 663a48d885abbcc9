import type { FastifyInstance } from 'fastify'
import { requireRole } from 'keyhole/fastify'
import { NotFound } from 'keyhole'
import { createGroup, getGroup } from '../schemas.ts'

interface CreateGroup {
  Body: { name: string }
}
interface GroupParams {
  Params: { groupId: string }
}

/**
 * Group routes. `POST /groups`: admins create groups; the `groups` insert policy (adminOnly) agrees.
 * `GET /groups/:groupId`: the group's read guard decides; a group the caller cannot read is, to
 * the caller, absent (404).
 */
export async function groupRoutes(app: FastifyInstance): Promise<void> {
  app.post<CreateGroup>(
    '/groups',
    { schema: createGroup, preHandler: requireRole('admin') },
    async (request, reply) => {
      const group = await request.db.insert('groups', { name: request.body.name })
      return reply.code(201).send(group)
    },
  )

  app.get<GroupParams>(
    '/groups/:groupId',
    { schema: getGroup, config: { keyhole: { transaction: 'statement' } } },
    async (request) => {
      const [group] = await request.db.select(
        'groups',
        { id: request.params.groupId },
        { columns: ['id', 'name'] },
      )
      if (group === undefined) throw new NotFound()
      return group
    },
  )
}
