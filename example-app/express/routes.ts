/**
 * The forum's routes on Express: the same paths, rules, statements and answers as the Fastify
 * routes (`routes/*.ts`), validated by the same schemas. Group-scoped routes answer 403 through
 * `requireRole` before any database work; thread and post routes leave the decision to the guarded
 * statements (404 for a row the caller cannot read, 403 for one it can read but not change).
 */
import { randomUUID } from 'node:crypto'
import { Router } from 'express'
import { requireRole, statementTransactions } from 'keyhole/express'
import { NotFound } from 'keyhole'
import { groupView, newInviteCode } from '../invite-codes.ts'
import * as schemas from '../schemas.ts'
import { listThreads, type ThreadListQuery } from '../thread-list.ts'
import { validate } from './validate.ts'

const oldestFirst = {
  orderBy: [
    ['created_at', 'asc'],
    ['id', 'asc'],
  ],
} as const

/** The forum's routes; `healthy()` throws 503 while keyhole's monitor reports a finding. */
export function forumRoutes(healthy: () => void): Router {
  const router = Router()
  const member = requireRole<{ groupId: string }>('member', {
    group: (req) => req.params.groupId,
  })
  // Routes that run one statement commit with it, in one round trip.
  const oneStatement = statementTransactions()

  router.get('/health', (_req, res) => {
    healthy()
    res.json({ status: 'ok' })
  })

  router.post(
    '/groups',
    validate(schemas.createGroup),
    requireRole('admin'),
    oneStatement,
    async (req, res) => {
      const group = await req.db.insert(
        'groups',
        // The ID is chosen here, not by the database: keyhole binds it into the code's ciphertext.
        // A server-made random UUID, so it is one of the insert's chosen keys (never the client's).
        { id: randomUUID(), name: req.body.name, invite_code: newInviteCode() },
        { returning: ['id', 'name', 'invite_code'], chosenKeys: ['id'] },
      )
      res.status(201).json(groupView(group))
    },
  )

  router.get('/groups/:groupId', validate(schemas.getGroup), oneStatement, async (req, res) => {
    // No column list: the column rules return what the caller may read of the row (the invite
    // code to its moderators and admins only), decrypted.
    const [group] = await req.db.select('groups', { id: req.params.groupId })
    if (group === undefined) throw new NotFound()
    res.json(groupView(group))
  })

  router.post('/groups/:groupId/invite-code', validate(schemas.newInviteCode), async (req, res) => {
    const { groupId } = req.params
    // Read first, in the same transaction: a group the caller cannot read is 404 to them; one
    // they can read but not change (a member) is the update's 403.
    const [group] = await req.db.select('groups', { id: groupId }, { columns: ['id'] })
    if (group === undefined) throw new NotFound()
    const inviteCode = newInviteCode()
    await req.db.update('groups', { id: groupId }, { invite_code: inviteCode }, { returning: [] })
    res.json({ inviteCode })
  })

  router.get(
    '/groups/:groupId/threads',
    validate(schemas.listThreads),
    member,
    oneStatement,
    async (req, res) => {
      res.json(await listThreads(req.db, req.params.groupId, req.query as ThreadListQuery))
    },
  )

  router.post(
    '/groups/:groupId/threads',
    validate(schemas.createThread),
    member,
    oneStatement,
    async (req, res) => {
      const thread = await req.db.insert('discussion_threads', {
        group_id: req.params.groupId,
        title: req.body.title,
        created_by: req.requireCapability().subject,
      })
      res.status(201).json(thread)
    },
  )

  router.get('/threads/:threadId', validate(schemas.getThread), oneStatement, async (req, res) => {
    const [thread] = await req.db.select('discussion_threads', { id: req.params.threadId })
    if (thread === undefined) throw new NotFound()
    res.json(thread)
  })

  router.patch(
    '/threads/:threadId',
    validate(schemas.updateThread),
    oneStatement,
    async (req, res) => {
      const { rows } = await req.db.update(
        'discussion_threads',
        { id: req.params.threadId },
        { title: req.body.title },
      )
      res.json(rows[0])
    },
  )

  router.delete(
    '/threads/:threadId',
    validate(schemas.deleteThread),
    oneStatement,
    async (req, res) => {
      await req.db.delete('discussion_threads', { id: req.params.threadId }, { returning: [] })
      res.status(204).end()
    },
  )

  router.get('/threads/:threadId/posts', validate(schemas.listPosts), async (req, res) => {
    // An empty list must not stand for "no such thread": read the thread through its own guard.
    const [thread] = await req.db.select('discussion_threads', { id: req.params.threadId })
    if (thread === undefined) throw new NotFound()
    res.json(await req.db.select('posts', { thread_id: req.params.threadId }, oldestFirst))
  })

  router.post('/threads/:threadId/posts', validate(schemas.createPost), async (req, res) => {
    const post = await req.db.insert('posts', {
      thread_id: req.params.threadId,
      content: req.body.content,
      author: req.requireCapability().subject,
    })
    res.status(201).json(post)
  })

  router.delete('/posts/:postId', validate(schemas.deletePost), async (req, res) => {
    await req.db.delete('posts', { id: req.params.postId }, { returning: [] })
    res.status(204).end()
  })

  return router
}
