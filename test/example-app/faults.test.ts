/**
 * Faults the forum must survive without leaking: an unexpected database error is a generic 500
 * (no SQL, no DETAIL), a build that cannot start closes what it opened, and the printed dev token
 * really is an admin token.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { jwtVerify } from 'jose'
import { dataKeys } from 'keyhole'
import { build } from '../../example-app/app.ts'
import { devAdminToken } from '../../example-app/tokens.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { assertError, startForum } from './helpers/forum.ts'

t.test("a database fault in a guarded statement answers keyhole's generic 500", async (t) => {
  const forum = await startForum(t)
  const thread = await forum.seedThread(forum.groupA, 'alice')
  await forum.db.pool.query('ALTER TABLE posts RENAME TO posts_gone')
  const response = await forum.request('alice', { method: 'GET', url: `/threads/${thread}/posts` })
  assertError(t, response, 500, 'KH_DATABASE_ERROR')
  t.notMatch(response.body, /posts_gone|relation|SELECT/i, 'no SQL or server detail in the body')
  await forum.db.pool.query('ALTER TABLE posts_gone RENAME TO posts')
})

t.test("any other unexpected error answers the forum's generic 500", async (t) => {
  const forum = await startForum(t)
  const thread = await forum.seedThread(forum.groupA, 'alice')
  await forum.seedPost(thread, 'alice')
  // The rows no longer fit the response schema: serialising them fails after the statement ran.
  await forum.db.pool.query('ALTER TABLE posts RENAME COLUMN content TO content_gone')
  const response = await forum.request('alice', { method: 'GET', url: `/threads/${thread}/posts` })
  assertError(t, response, 500, 'INTERNAL')
  t.notMatch(response.body, /content|required|SELECT/i, 'no SQL or server detail in the body')
  await forum.db.pool.query('ALTER TABLE posts RENAME COLUMN content_gone TO content')
})

t.test('a build that fails to start closes what it opened and rethrows', async (t) => {
  const db = await createTestDatabase(t)
  await t.rejects(
    build({
      databaseUrl: db.url,
      jwtSecret: 'too short for HS256',
      jwtIssuer: 'keyhole-example',
      jwtAudience: 'forum',
      dataKeys: dataKeys({ current: randomBytes(32) }),
      roles: { migration: `${db.prefix}_migrator`, runtime: `${db.prefix}_app` },
    }),
    { code: 'KH_INVALID_OPTIONS' },
  )
})

t.test('the dev token is an admin token for the configured issuer and audience', async (t) => {
  const settings = {
    jwtSecret: randomBytes(32).toString('base64url'),
    jwtIssuer: 'keyhole-example',
    jwtAudience: 'forum',
  }
  const token = await devAdminToken(settings)
  const { payload } = await jwtVerify(token, new TextEncoder().encode(settings.jwtSecret), {
    issuer: 'keyhole-example',
    audience: 'forum',
  })
  t.equal(payload.sub, 'dev-admin')
  t.match(payload.permissions, [{ role: 'admin' }])
})
