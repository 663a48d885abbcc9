import type { FastifyInstance } from 'fastify'
import { NotFound } from 'keyhole'
import { createPost, deletePost, listPosts } from '../schemas.ts'

interface ThreadParams {
  Params: { threadId: string }
}
interface PostParams {
  Params: { postId: string }
}
interface ContentBody {
  Body: { content: string }
}

/**
 * Post routes. Posts have no group column: their guards reach the group through the thread
 * (`viaParent`), so a post in a thread the caller cannot read is, to the caller, absent (404).
 */
export async function postRoutes(app: FastifyInstance): Promise<void> {
  app.get<ThreadParams>('/threads/:threadId/posts', { schema: listPosts }, async (request) => {
    // An empty list must not stand for "no such thread": read the thread through its own guard.
    const [thread] = await request.db.select('discussion_threads', { id: request.params.threadId })
    if (thread === undefined) throw new NotFound()
    return request.db.select(
      'posts',
      { thread_id: request.params.threadId },
      {
        orderBy: [
          ['created_at', 'asc'],
          ['id', 'asc'],
        ],
      },
    )
  })

  app.post<ThreadParams & ContentBody>(
    '/threads/:threadId/posts',
    { schema: createPost },
    async (request, reply) => {
      const post = await request.db.insert('posts', {
        thread_id: request.params.threadId,
        content: request.body.content,
        author: request.requireCapability().subject,
      })
      return reply.code(201).send(post)
    },
  )

  app.delete<PostParams>('/posts/:postId', { schema: deletePost }, async (request, reply) => {
    await request.db.delete('posts', { id: request.params.postId }, { returning: [] })
    return reply.code(204).send()
  })
}
