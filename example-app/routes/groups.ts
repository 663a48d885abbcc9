import type { FastifyInstance } from 'fastify'
import { requireRole } from 'keyhole/fastify'
import { createGroup } from '../schemas.ts'

interface CreateGroup {
  Body: { name: string }
}

/** `POST /groups`: admins create groups; the `groups` insert policy (adminOnly) agrees. */
export async function groupRoutes(app: FastifyInstance): Promise<void> {
  app.post<CreateGroup>(
    '/groups',
    { schema: createGroup, preHandler: requireRole('admin') },
    async (request, reply) => {
      const group = await request.db.insert('groups', { name: request.body.name })
      return reply.code(201).send(group)
    },
  )
}
