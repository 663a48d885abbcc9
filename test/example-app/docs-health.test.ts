/**
 * The public routes: /health (200, or 503 while the monitor reports a finding) and the OpenAPI
 * description at /docs, generated from the very schemas that validate the requests.
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import * as schemas from '../../example-app/schemas.ts'
import { assertError, startForum } from './helpers/forum.ts'

// A short monitor interval, so that breaking the database is noticed within the test.
const forum = await startForum(t, { monitorIntervalMs: 200 })

/** Polls /health until it answers `status` (the monitor runs on its own clock). */
async function healthBecomes(status: number) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const response = await forum.app.inject({ method: 'GET', url: '/health' })
    if (response.statusCode === status) return response
    await sleep(100)
  }
  return forum.app.inject({ method: 'GET', url: '/health' })
}

t.test('GET /health: public, 200 { status: "ok" }', async (t) => {
  const response = await forum.app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok' })
})

t.test('GET /docs: public Swagger UI', async (t) => {
  const response = await forum.app.inject({ method: 'GET', url: '/docs' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /text\/html/)
})

t.test('GET /docs/json: the OpenAPI description, from the validating schemas', async (t) => {
  const response = await forum.app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(response.statusCode, 200)
  const doc = response.json()
  t.match(doc, {
    openapi: /^3\./,
    components: { securitySchemes: { bearerAuth: { scheme: 'bearer' } } },
  })
  t.same(Object.keys(doc.paths).sort(), [
    '/groups',
    '/groups/{groupId}',
    '/groups/{groupId}/invite-code',
    '/groups/{groupId}/threads',
    '/health',
    '/posts/{postId}',
    '/threads/{threadId}',
    '/threads/{threadId}/posts',
  ])
  const bodyOf = (path: string, method: string) =>
    doc.paths[path][method].requestBody.content['application/json'].schema
  t.match(bodyOf('/groups', 'post'), schemas.createGroup.body, 'POST /groups body')
  t.match(bodyOf('/groups/{groupId}/threads', 'post'), schemas.createThread.body)
  t.match(bodyOf('/threads/{threadId}', 'patch'), schemas.updateThread.body)
  t.match(bodyOf('/threads/{threadId}/posts', 'post'), schemas.createPost.body)
  t.match(doc.paths['/threads/{threadId}'].get.parameters, [
    { in: 'path', name: 'threadId', required: true, schema: { format: 'uuid' } },
  ])
  t.match(
    doc.paths['/groups/{groupId}/threads'].get.parameters,
    [
      { in: 'query', name: 'limit', schema: { type: 'string', pattern: String } },
      { in: 'query', name: 'after', schema: { format: 'uuid' } },
      { in: 'query', name: 'q', schema: { type: 'string', maxLength: 200 } },
      { in: 'path', name: 'groupId', required: true },
    ],
    'the list: limit, after and q',
  )
  const listed = doc.paths['/groups/{groupId}/threads'].get.responses[200]
  t.match(listed.content['application/json'].schema, {
    type: 'array',
    items: { $ref: '#/components/schemas/ThreadInList' },
  })
  t.match(doc.components.schemas.ThreadInList, {
    properties: { postCount: { type: 'integer' }, lastPostAt: { format: 'date-time' } },
    required: ['id', 'title', 'group_id', 'created_by', 'created_at', 'postCount', 'lastPostAt'],
  })
  const answer = (path: string, method: string, status: number) =>
    doc.paths[path][method].responses[status].content['application/json'].schema
  t.match(answer('/groups', 'post', 201), { required: ['id', 'name', 'inviteCode'] })
  t.match(answer('/groups/{groupId}', 'get', 200), { $ref: '#/components/schemas/Group' })
  t.match(doc.components.schemas.Group, {
    properties: { inviteCode: { type: 'string', nullable: true } },
    required: ['id', 'name'],
  })
  t.match(answer('/groups/{groupId}/invite-code', 'post', 200), { required: ['inviteCode'] })
  t.same(doc.paths['/groups'].post.security, [{ bearerAuth: [] }])
  t.notOk(doc.paths['/health'].get.security, '/health needs no token')
})

t.test('GET /health: 503 while the monitor reports a finding, 200 again once fixed', async (t) => {
  // Break the second line of defence behind keyhole's back: posts' RLS is no longer forced.
  await forum.db.pool.query('ALTER TABLE posts NO FORCE ROW LEVEL SECURITY')
  const broken = await healthBecomes(503)
  assertError(t, broken, 503, 'KH_UNAVAILABLE')
  t.notMatch(broken.body, /posts|FORCE/, 'the finding itself is not disclosed')

  await forum.db.pool.query('ALTER TABLE posts FORCE ROW LEVEL SECURITY')
  const fixed = await healthBecomes(200)
  t.equal(fixed.statusCode, 200)
  t.same(fixed.json(), { status: 'ok' })
})
