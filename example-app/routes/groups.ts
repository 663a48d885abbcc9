import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { requireRole } from 'keyhole/fastify'
import { NotFound } from 'keyhole'
import { groupView, newInviteCode } from '../invite-codes.ts'
import { createGroup, getGroup, newInviteCode as newInviteCodeSchema } from '../schemas.ts'

interface CreateGroup {
  Body: { name: string }
}
interface GroupParams {
  Params: { groupId: string }
}

const oneStatement = { keyhole: { transaction: 'statement' } } as const

/**
 * Group routes. The guards decide who reaches a group: a group the caller cannot read is, to the
 * caller, absent (404); the column rules decide who sees and changes its invite code, which
 * keyhole encrypts on the way in and decrypts on the way out.
 */
export async function groupRoutes(app: FastifyInstance): Promise<void> {
  // Admins create groups; the `groups` insert policy (adminOnly) agrees.
  app.post<CreateGroup>(
    '/groups',
    { schema: createGroup, preHandler: requireRole('admin'), config: oneStatement },
    async (request, reply) => {
      const group = await request.db.insert(
        'groups',
        // The ID is chosen here, not by the database: keyhole binds it into the code's ciphertext.
        // A server-made random UUID, so it is one of the insert's chosen keys (never the client's).
        { id: randomUUID(), name: request.body.name, invite_code: newInviteCode() },
        { returning: ['id', 'name', 'invite_code'], chosenKeys: ['id'] },
      )
      return reply.code(201).send(groupView(group))
    },
  )

  app.get<GroupParams>(
    '/groups/:groupId',
    { schema: getGroup, config: oneStatement },
    async (request) => {
      // No column list: the column rules return what the caller may read of the row (the
      // invite code to its moderators and admins only), decrypted.
      const [group] = await request.db.select('groups', { id: request.params.groupId })
      if (group === undefined) throw new NotFound()
      return groupView(group)
    },
  )

  app.post<GroupParams>(
    '/groups/:groupId/invite-code',
    { schema: newInviteCodeSchema },
    async (request) => {
      const { groupId } = request.params
      // Read first, in the same transaction: a group the caller cannot read is 404 to them; one
      // they can read but not change (a member) is the update's 403.
      const [group] = await request.db.select('groups', { id: groupId }, { columns: ['id'] })
      if (group === undefined) throw new NotFound()
      const inviteCode = newInviteCode()
      await request.db.update(
        'groups',
        { id: groupId },
        { invite_code: inviteCode },
        { returning: [] },
      )
      return { inviteCode }
    },
  )
}
