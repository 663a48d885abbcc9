/**
 * The forum's HTTP contract, row by row, for every kind of caller: members, moderators and admins
 * (allowed) and users of another group and users with no permissions (refused), with the 403/404
 * rule: a thread or post the caller cannot read is "not found", exactly as one that does not exist.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import {
  createGroup,
  getGroup,
  listThreads,
  newInviteCode,
  sharedSchemas,
} from '../../example-app/schemas.ts'
import { signToken } from '../../example-app/tokens.ts'
import {
  assertError,
  forumAdapters,
  startForum,
  uuidPattern,
  type Caller,
} from './helpers/forum.ts'

// The list's answers checked against the OpenAPI response schema (Fastify's serializer would drop
// a field the schema lacks; Express sends what the handler returns, so both are checked).
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default
const ajv = addFormats(new Ajv({ schemas: [...sharedSchemas] }))
const validThreadList = ajv.compile(listThreads.response[200])
// The same for the group routes' answers, by route.
const groupSchemas = {
  created: ajv.compile(createGroup.response[201]),
  group: ajv.compile(getGroup.response[200]),
  code: ajv.compile(newInviteCode.response[200]),
}

/** What the API answers as an invite code: 12 random bytes as base64url. */
const inviteCodePattern = /^[A-Za-z0-9_-]{16}$/
/** What the database holds instead: keyhole's ciphertext text. */
const keyholeCiphertext = /^kh1\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]+$/

// The same contract, row by row, for the Fastify forum and the Express one.
for (const adapter of forumAdapters) {
  t.test(adapter, async (t) => {
    const forum = await startForum(t, { adapter })
    const { groupA, groupB } = forum

    const strangers: Caller[] = ['carol', 'carolMod', 'nobody']

    async function threadTitle(id: string): Promise<string | undefined> {
      const { rows } = await forum.db.pool.query<{ title: string }>(
        'SELECT title FROM discussion_threads WHERE id = $1',
        [id],
      )
      return rows[0]?.title
    }

    async function exists(table: 'discussion_threads' | 'posts', id: string): Promise<boolean> {
      const { rowCount } = await forum.db.pool.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id])
      return rowCount === 1
    }

    t.test('POST /groups: admins create groups; everyone else is refused with 403', async (t) => {
      const created = await forum.request('admin', {
        method: 'POST',
        url: '/groups',
        payload: { name: 'group C' },
      })
      t.equal(created.statusCode, 201)
      const group = created.json()
      t.same(Object.keys(group).sort(), ['id', 'inviteCode', 'name'])
      t.match(group, { id: uuidPattern, name: 'group C', inviteCode: inviteCodePattern })
      t.ok(groupSchemas.created(group), 'the OpenAPI response schema')

      const before = await forum.count('groups')
      for (const caller of ['alice', 'mod', 'carol', 'carolMod', 'nobody'] as const) {
        const refused = await forum.request(caller, {
          method: 'POST',
          url: '/groups',
          payload: { name: `by ${caller}` },
        })
        assertError(t, refused, 403, 'KH_FORBIDDEN', caller)
      }
      t.equal(await forum.count('groups'), before, 'nothing written')
    })

    /** A group's invite code as stored (read as the superuser): ciphertext, or null. */
    async function storedCode(id: string): Promise<string | null | undefined> {
      const { rows } = await forum.db.pool.query<{ invite_code: string | null }>(
        'SELECT invite_code FROM groups WHERE id = $1',
        [id],
      )
      return rows[0]?.invite_code
    }
    /** Every invite code the API answered in this file, to look for in the stored values. */
    const codesSeen: string[] = []

    t.test('GET /groups/:groupId and POST /groups/:groupId/invite-code', async (t) => {
      /** A request whose 200 answer is checked against its OpenAPI response schema (below). */
      const unlike: string[] = []
      const checked = async (caller: Caller, method: 'GET' | 'POST', url: string) => {
        const response = await forum.request(caller, { method, url })
        const valid = method === 'GET' ? groupSchemas.group : groupSchemas.code
        if (response.statusCode === 200 && !valid(response.json())) {
          unlike.push(`${caller} ${method} ${url}: ${response.body}`)
        }
        return response
      }
      const read = (caller: Caller) => checked(caller, 'GET', `/groups/${groupA}`)
      const renew = (caller: Caller, id = groupA) =>
        checked(caller, 'POST', `/groups/${id}/invite-code`)

      t.test('before any code: moderators and admins read null, members no code', async (t) => {
        for (const caller of ['alice', 'bob'] as const) {
          const response = await read(caller)
          t.equal(response.statusCode, 200, caller)
          t.same(response.json(), { id: groupA, name: 'group A' }, `${caller}: no inviteCode`)
        }
        for (const caller of ['mod', 'admin'] as const) {
          const response = await read(caller)
          t.equal(response.statusCode, 200, caller)
          t.same(response.json(), { id: groupA, name: 'group A', inviteCode: null }, caller)
        }
      })

      t.test('moderators of the group and admins make a new code', async (t) => {
        for (const caller of ['mod', 'admin'] as const) {
          const before = await storedCode(groupA)
          const response = await renew(caller)
          t.equal(response.statusCode, 200, caller)
          const body = response.json()
          t.same(Object.keys(body), ['inviteCode'])
          t.match(body.inviteCode, inviteCodePattern, `${caller}: 16 characters of base64url`)
          t.not(await storedCode(groupA), before, `${caller}: a new value is stored`)
          t.notOk(codesSeen.includes(body.inviteCode), 'a code never seen before')
          codesSeen.push(body.inviteCode)
        }
        const inB = await renew('admin', groupB)
        t.equal(inB.statusCode, 200, 'admins in any group')
        codesSeen.push(inB.json().inviteCode)
      })

      t.test('the latest code: to moderators and admins only', async (t) => {
        const latest = codesSeen[1]
        for (const caller of ['mod', 'admin'] as const) {
          const response = await read(caller)
          t.equal(response.statusCode, 200, caller)
          t.same(response.json(), { id: groupA, name: 'group A', inviteCode: latest }, caller)
        }
        for (const caller of ['alice', 'bob'] as const) {
          const response = await read(caller)
          t.equal(response.statusCode, 200, caller)
          t.same(response.json(), { id: groupA, name: 'group A' }, `${caller}: no inviteCode`)
        }
      })

      t.test("a member of A who moderates B: B's code, never A's", async (t) => {
        const dave = await signToken(forum.settings, {
          sub: 'dave',
          permissions: [
            { group: groupA, role: 'member' },
            { group: groupB, role: 'moderator' },
          ],
        })
        const ofA = await forum.requestWith(dave, { method: 'GET', url: `/groups/${groupA}` })
        t.same(ofA.json(), { id: groupA, name: 'group A' }, 'A: no inviteCode')
        const ofB = await forum.requestWith(dave, { method: 'GET', url: `/groups/${groupB}` })
        t.same(ofB.json(), { id: groupB, name: 'group B', inviteCode: codesSeen[2] }, 'B: its code')
        const before = await storedCode(groupA)
        const renewA = await forum.requestWith(dave, {
          method: 'POST',
          url: `/groups/${groupA}/invite-code`,
        })
        t.equal(renewA.statusCode, 403, "A's code: 403")
        t.equal(await storedCode(groupA), before, 'unchanged')
      })

      t.test('a new code: a member 403, anyone else 404; nothing written', async (t) => {
        const before = await storedCode(groupA)
        // The column rules: a member may write the code in no row, refused before any SQL.
        for (const caller of ['alice', 'bob'] as const) {
          assertError(t, await renew(caller), 403, 'KH_COLUMN_DENIED', caller)
        }
        const absent = await renew('admin', randomUUID())
        assertError(t, absent, 404, 'KH_NOT_FOUND', 'a group that does not exist')
        for (const caller of strangers) {
          const response = await renew(caller)
          assertError(t, response, 404, 'KH_NOT_FOUND', caller)
          t.same(
            response.json(),
            absent.json(),
            `${caller}: indistinguishable from a missing group`,
          )
        }
        t.equal(await storedCode(groupA), before, 'the stored code is unchanged')
      })

      t.test('reading a group: anyone else 404, as a missing group', async (t) => {
        const absent = await forum.request('admin', {
          method: 'GET',
          url: `/groups/${randomUUID()}`,
        })
        assertError(t, absent, 404, 'KH_NOT_FOUND', 'a group that does not exist')
        for (const caller of strangers) {
          const response = await read(caller)
          assertError(t, response, 404, 'KH_NOT_FOUND', caller)
          t.same(
            response.json(),
            absent.json(),
            `${caller}: indistinguishable from a missing group`,
          )
        }
      })

      t.test("every 200 above is its route's OpenAPI response schema", async (t) => {
        t.same(unlike, [])
      })
    })

    t.test('the database holds no invite code in clear (read as the superuser)', async (t) => {
      const created = await forum.request('admin', {
        method: 'POST',
        url: '/groups',
        payload: { name: 'group D' },
      })
      t.equal(created.statusCode, 201)
      const groupD = created.json()
      codesSeen.push(groupD.inviteCode)
      const { rows } = await forum.db.pool.query<{ id: string; invite_code: string | null }>(
        'SELECT id, invite_code FROM groups',
      )
      const stored = rows.map((row) => row.invite_code).filter((code) => code !== null)
      t.ok(stored.length >= 3, 'the codes made above are stored')
      for (const value of stored) {
        t.match(value, keyholeCiphertext, "keyhole's ciphertext format: kh1.<key ID>.<base64url>")
        for (const code of codesSeen) t.notOk(value.includes(code), 'no code in clear')
      }
      t.equal(new Set(stored).size, stored.length, 'no two stored values alike')
      const dump = JSON.stringify(rows)
      t.notOk(
        codesSeen.some((code) => dump.includes(code)),
        'nor anywhere in a dump of groups',
      )

      await t.rejects(
        forum.db.pool.query('UPDATE groups SET invite_code = $1 WHERE id = $2', [
          'in-clear-code-16',
          groupD.id,
        ]),
        { code: '23514' },
        'the database refuses a code in clear written past keyhole',
      )
    })

    t.test('a code moved to another group fails to decrypt: 500, nothing revealed', async (t) => {
      const created = await forum.request('admin', {
        method: 'POST',
        url: '/groups',
        payload: { name: 'group E' },
      })
      const groupE = created.json()
      // Someone with write access to the table copies group A's ciphertext into group E.
      await forum.db.pool.query(
        'UPDATE groups SET invite_code = (SELECT invite_code FROM groups WHERE id = $1) WHERE id = $2',
        [groupA, groupE.id],
      )
      const response = await forum.request('admin', { method: 'GET', url: `/groups/${groupE.id}` })
      assertError(t, response, 500, 'KH_DECRYPT_FAILED')
      t.notOk(
        codesSeen.some((code) => response.body.includes(code)),
        "neither group's code in the answer",
      )
      t.notMatch(response.body, /kh1\./, 'nor any ciphertext')
    })

    t.test(
      'GET /groups/:groupId/threads: member+ of the group and admins, newest first',
      async (t) => {
        const older = await forum.seedThread(groupA, 'alice', 'older')
        const newer = await forum.seedThread(groupA, 'bob', 'newer')
        await forum.seedThread(groupB, 'carol', 'in B')
        const { rows } = await forum.db.pool.query<{ id: string }>(
          'SELECT id FROM discussion_threads WHERE group_id = $1 ORDER BY created_at DESC, id DESC',
          [groupA],
        )
        for (const caller of ['alice', 'bob', 'mod', 'admin'] as const) {
          const response = await forum.request(caller, {
            method: 'GET',
            url: `/groups/${groupA}/threads`,
          })
          t.equal(response.statusCode, 200, caller)
          const threads = response.json() as { id: string; group_id: string }[]
          t.same(
            threads.map((thread) => thread.id),
            rows.map((row) => row.id),
            `${caller}: all of group A's threads, newest first`,
          )
          const ids = threads.map((thread) => thread.id)
          t.ok(ids.indexOf(newer) < ids.indexOf(older), `${caller}: newer before older`)
          t.match(threads[0], {
            id: uuidPattern,
            title: String,
            group_id: groupA,
            created_by: String,
            created_at: String,
          })
        }
        for (const caller of strangers) {
          const response = await forum.request(caller, {
            method: 'GET',
            url: `/groups/${groupA}/threads`,
          })
          assertError(t, response, 403, 'KH_FORBIDDEN', caller)
        }
      },
    )

    t.test(
      'POST /groups/:groupId/threads: member+ of the group and admins; 403 otherwise',
      async (t) => {
        for (const caller of ['alice', 'mod', 'admin'] as const) {
          const response = await forum.request(caller, {
            method: 'POST',
            url: `/groups/${groupA}/threads`,
            payload: { title: `by ${caller}` },
          })
          t.equal(response.statusCode, 201, caller)
          const thread = response.json()
          t.same(Object.keys(thread).sort(), [
            'created_at',
            'created_by',
            'group_id',
            'id',
            'title',
          ])
          t.match(thread, {
            id: uuidPattern,
            title: `by ${caller}`,
            group_id: groupA,
            created_by: caller,
          })
          t.ok(Number.isFinite(Date.parse(thread.created_at)), 'created_at is a timestamp')
          t.equal(await threadTitle(thread.id), `by ${caller}`, 'written')
        }
        const inB = await forum.request('admin', {
          method: 'POST',
          url: `/groups/${groupB}/threads`,
          payload: { title: 'admin anywhere' },
        })
        t.equal(inB.statusCode, 201, 'admins create threads in any group')

        const before = await forum.count('discussion_threads')
        for (const caller of strangers) {
          const response = await forum.request(caller, {
            method: 'POST',
            url: `/groups/${groupA}/threads`,
            payload: { title: `by ${caller}` },
          })
          assertError(t, response, 403, 'KH_FORBIDDEN', caller)
        }
        t.equal(await forum.count('discussion_threads'), before, 'nothing written')
      },
    )

    t.test(
      'GET /threads/:threadId: member+ of its group and admins; 404 for anyone else',
      async (t) => {
        const id = await forum.seedThread(groupA, 'alice', 'readable')
        for (const caller of ['alice', 'bob', 'mod', 'admin'] as const) {
          const response = await forum.request(caller, { method: 'GET', url: `/threads/${id}` })
          t.equal(response.statusCode, 200, caller)
          t.match(response.json(), { id, title: 'readable', group_id: groupA, created_by: 'alice' })
        }
        const absent = await forum.request('alice', {
          method: 'GET',
          url: `/threads/${randomUUID()}`,
        })
        assertError(t, absent, 404, 'KH_NOT_FOUND', 'a thread that does not exist')
        for (const caller of strangers) {
          const response = await forum.request(caller, { method: 'GET', url: `/threads/${id}` })
          assertError(t, response, 404, 'KH_NOT_FOUND', caller)
          t.same(
            response.json(),
            absent.json(),
            `${caller}: indistinguishable from a missing thread`,
          )
        }
      },
    )

    t.test('PATCH /threads/:threadId: its author while a member, moderators, admins', async (t) => {
      const id = await forum.seedThread(groupA, 'alice', 'first title')
      const allowed: [Caller, string][] = [
        ['alice', 'renamed by its author'],
        ['mod', 'renamed by a moderator'],
        ['admin', 'renamed by an admin'],
      ]
      for (const [caller, title] of allowed) {
        const response = await forum.request(caller, {
          method: 'PATCH',
          url: `/threads/${id}`,
          payload: { title },
        })
        t.equal(response.statusCode, 200, caller)
        t.match(response.json(), { id, title, group_id: groupA, created_by: 'alice' })
        t.equal(await threadTitle(id), title)
      }

      const bob = await forum.request('bob', {
        method: 'PATCH',
        url: `/threads/${id}`,
        payload: { title: 'by bob' },
      })
      assertError(
        t,
        bob,
        403,
        'KH_CAPABILITY_DENIED',
        'a member who can read it but is not its author',
      )

      for (const caller of strangers) {
        const response = await forum.request(caller, {
          method: 'PATCH',
          url: `/threads/${id}`,
          payload: { title: `by ${caller}` },
        })
        assertError(t, response, 404, 'KH_NOT_FOUND', caller)
      }
      const absent = await forum.request('alice', {
        method: 'PATCH',
        url: `/threads/${randomUUID()}`,
        payload: { title: 'nothing' },
      })
      assertError(t, absent, 404, 'KH_NOT_FOUND', 'a thread that does not exist')
      t.equal(await threadTitle(id), 'renamed by an admin', 'refused requests changed nothing')
    })

    t.test('PATCH /threads/:threadId: an author who left the group cannot rename it', async (t) => {
      const id = await forum.seedThread(groupA, 'dave', 'by dave')
      const daveNowInB = await signToken(forum.settings, {
        sub: 'dave',
        permissions: [{ group: groupB, role: 'member' }],
      })
      const response = await forum.requestWith(daveNowInB, {
        method: 'PATCH',
        url: `/threads/${id}`,
        payload: { title: 'still mine?' },
      })
      assertError(t, response, 404, 'KH_NOT_FOUND')
      t.equal(await threadTitle(id), 'by dave')
    })

    t.test(
      'DELETE /threads/:threadId: moderators of its group and admins; posts go too',
      async (t) => {
        const byMod = await forum.seedThread(groupA, 'alice', 'to be deleted by a moderator')
        const post = await forum.seedPost(byMod, 'bob')
        const byAdmin = await forum.seedThread(groupB, 'carol', 'to be deleted by an admin')

        for (const caller of ['alice', 'bob'] as const) {
          const response = await forum.request(caller, {
            method: 'DELETE',
            url: `/threads/${byMod}`,
          })
          assertError(
            t,
            response,
            403,
            'KH_CAPABILITY_DENIED',
            `${caller} can read it, not delete it`,
          )
        }
        for (const caller of strangers) {
          const response = await forum.request(caller, {
            method: 'DELETE',
            url: `/threads/${byMod}`,
          })
          assertError(t, response, 404, 'KH_NOT_FOUND', caller)
        }
        t.ok(await exists('discussion_threads', byMod), 'refused deletes changed nothing')

        const deleted = await forum.request('mod', { method: 'DELETE', url: `/threads/${byMod}` })
        t.equal(deleted.statusCode, 204)
        t.equal(deleted.body, '')
        t.notOk(await exists('discussion_threads', byMod), 'the thread is gone')
        t.notOk(await exists('posts', post), 'its posts went with it')

        const again = await forum.request('mod', { method: 'DELETE', url: `/threads/${byMod}` })
        assertError(t, again, 404, 'KH_NOT_FOUND', 'deleting it again')

        const admin = await forum.request('admin', { method: 'DELETE', url: `/threads/${byAdmin}` })
        t.equal(admin.statusCode, 204, 'admins delete threads in any group')
        t.notOk(await exists('discussion_threads', byAdmin))
      },
    )

    t.test(
      'GET /threads/:threadId/posts: member+ of its group and admins, oldest first',
      async (t) => {
        const thread = await forum.seedThread(groupA, 'alice')
        const first = await forum.seedPost(thread, 'alice', 'first')
        const second = await forum.seedPost(thread, 'bob', 'second')
        const empty = await forum.seedThread(groupA, 'alice')
        for (const caller of ['alice', 'bob', 'mod', 'admin'] as const) {
          const response = await forum.request(caller, {
            method: 'GET',
            url: `/threads/${thread}/posts`,
          })
          t.equal(response.statusCode, 200, caller)
          const posts = response.json()
          t.same(
            posts.map((p: { id: string }) => p.id),
            [first, second],
            'oldest first',
          )
          t.same(Object.keys(posts[0]).sort(), [
            'author',
            'content',
            'created_at',
            'id',
            'thread_id',
          ])
          t.match(posts[0], { id: first, content: 'first', thread_id: thread, author: 'alice' })
        }
        const none = await forum.request('alice', { method: 'GET', url: `/threads/${empty}/posts` })
        t.equal(none.statusCode, 200)
        t.same(none.json(), [], 'a readable thread without posts')
        for (const caller of strangers) {
          const response = await forum.request(caller, {
            method: 'GET',
            url: `/threads/${thread}/posts`,
          })
          assertError(t, response, 404, 'KH_NOT_FOUND', caller)
        }
        const absent = await forum.request('admin', {
          method: 'GET',
          url: `/threads/${randomUUID()}/posts`,
        })
        assertError(t, absent, 404, 'KH_NOT_FOUND', 'a thread that does not exist')
      },
    )

    t.test(
      'POST /threads/:threadId/posts: member+ of its group and admins; 404 otherwise',
      async (t) => {
        const thread = await forum.seedThread(groupA, 'alice')
        for (const caller of ['alice', 'bob', 'mod', 'admin'] as const) {
          const response = await forum.request(caller, {
            method: 'POST',
            url: `/threads/${thread}/posts`,
            payload: { content: `hello from ${caller}` },
          })
          t.equal(response.statusCode, 201, caller)
          const post = response.json()
          t.same(Object.keys(post).sort(), ['author', 'content', 'created_at', 'id', 'thread_id'])
          t.match(post, {
            id: uuidPattern,
            content: `hello from ${caller}`,
            thread_id: thread,
            author: caller,
          })
          t.ok(await exists('posts', post.id), 'written')
        }
        const before = await forum.count('posts')
        for (const caller of strangers) {
          const response = await forum.request(caller, {
            method: 'POST',
            url: `/threads/${thread}/posts`,
            payload: { content: `from ${caller}` },
          })
          assertError(t, response, 404, 'KH_NOT_FOUND', caller)
        }
        const absent = await forum.request('admin', {
          method: 'POST',
          url: `/threads/${randomUUID()}/posts`,
          payload: { content: 'into the void' },
        })
        assertError(t, absent, 404, 'KH_NOT_FOUND', 'a thread that does not exist')
        t.equal(await forum.count('posts'), before, 'nothing written')
      },
    )

    t.test('DELETE /posts/:postId: moderators of its group and admins', async (t) => {
      const threadA = await forum.seedThread(groupA, 'alice')
      const threadB = await forum.seedThread(groupB, 'carol')
      const post = await forum.seedPost(threadA, 'alice')
      const postB = await forum.seedPost(threadB, 'carol')

      for (const caller of ['alice', 'bob'] as const) {
        const response = await forum.request(caller, { method: 'DELETE', url: `/posts/${post}` })
        assertError(
          t,
          response,
          403,
          'KH_CAPABILITY_DENIED',
          `${caller} can read it, not delete it`,
        )
      }
      for (const caller of strangers) {
        const response = await forum.request(caller, { method: 'DELETE', url: `/posts/${post}` })
        assertError(t, response, 404, 'KH_NOT_FOUND', caller)
      }
      t.ok(await exists('posts', post), 'refused deletes changed nothing')

      const deleted = await forum.request('mod', { method: 'DELETE', url: `/posts/${post}` })
      t.equal(deleted.statusCode, 204)
      t.notOk(await exists('posts', post))
      t.ok(await exists('discussion_threads', threadA), 'the thread stays')

      const refusedInB = await forum.request('mod', { method: 'DELETE', url: `/posts/${postB}` })
      assertError(t, refusedInB, 404, 'KH_NOT_FOUND', "a moderator of A cannot see B's posts")
      const admin = await forum.request('admin', { method: 'DELETE', url: `/posts/${postB}` })
      t.equal(admin.statusCode, 204, 'admins delete posts in any group')
      t.notOk(await exists('posts', postB))

      const absent = await forum.request('admin', {
        method: 'DELETE',
        url: `/posts/${randomUUID()}`,
      })
      assertError(t, absent, 404, 'KH_NOT_FOUND', 'a post that does not exist')
    })

    t.test('GET /groups/:groupId/threads: pages, search and post counts', async (t) => {
      /** A new group and a member of it, arranged directly (superuser). */
      async function newGroup(name: string) {
        const { rows } = await forum.db.pool.query<{ id: string }>(
          'INSERT INTO groups (name) VALUES ($1) RETURNING id',
          [name],
        )
        const id = rows[0]!.id
        const token = await signToken(forum.settings, {
          sub: 'dana',
          permissions: [{ group: id, role: 'member' }],
        })
        return { id, token }
      }
      type Listed = {
        id: string
        title: string
        group_id: string
        postCount: number
        lastPostAt: string | null
      }
      async function list(token: string, url: string) {
        const response = await forum.requestWith(token, { method: 'GET', url })
        if (response.statusCode === 200 && !validThreadList(response.json())) {
          t.fail(`${url}: not the OpenAPI response schema`, { errors: validThreadList.errors })
        }
        return response
      }
      const ids = (response: { json(): Listed[] }) => response.json().map((row) => row.id)

      // 120 threads in one statement, two by two at the same instant: ties broken by id.
      const paged = await newGroup('paged')
      await forum.db.pool.query(
        `INSERT INTO discussion_threads (group_id, title, created_by, created_at)
         SELECT $1, 'thread ' || i, 'dana', timestamptz '2026-01-01Z' + (i / 2) * interval '1 s'
         FROM generate_series(1, 120) AS i`,
        [paged.id],
      )
      const { rows } = await forum.db.pool.query<{ id: string }>(
        'SELECT id FROM discussion_threads WHERE group_id = $1 ORDER BY created_at DESC, id DESC',
        [paged.id],
      )
      const newestFirst = rows.map((row) => row.id)
      const url = `/groups/${paged.id}/threads`

      t.test('limit: 50 by default, at most 100', async (t) => {
        t.same(ids(await list(paged.token, url)), newestFirst.slice(0, 50), 'default: 50')
        t.same(ids(await list(paged.token, `${url}?limit=100`)), newestFirst.slice(0, 100))
        t.same(ids(await list(paged.token, `${url}?limit=1`)), newestFirst.slice(0, 1))
        for (const limit of ['0', '101', 'abc']) {
          const response = await list(paged.token, `${url}?limit=${limit}`)
          assertError(t, response, 400, 'KH_BAD_REQUEST', `limit=${limit}`)
        }
      })

      t.test('after: page by page, no thread twice and none skipped', async (t) => {
        const walked: string[] = []
        let after = ''
        for (let page = 0; page < 10; page++) {
          // Pages of 24: every boundary falls between two threads of the same instant.
          const response = await list(paged.token, `${url}?limit=24${after}`)
          t.equal(response.statusCode, 200)
          const pageIds = ids(response)
          if (pageIds.length === 0) break
          walked.push(...pageIds)
          after = `&after=${pageIds.at(-1)}`
        }
        t.same(walked, newestFirst, 'the pages, joined, are the whole list in order')
      })

      t.test('after: an unknown or unreadable thread is 400, and reveals nothing', async (t) => {
        const inB = await forum.seedThread(groupB, 'carol', 'in B')
        const unknown = await list(paged.token, `${url}?after=${randomUUID()}`)
        assertError(t, unknown, 400, 'KH_BAD_REQUEST', 'a thread that does not exist')
        const ofB = await list(paged.token, `${url}?after=${inB}`)
        assertError(t, ofB, 400, 'KH_BAD_REQUEST', "another group's thread")
        t.same(ofB.json(), unknown.json(), 'indistinguishable from a missing thread')
        const adminOfB = await forum.request('admin', {
          method: 'GET',
          url: `/groups/${groupA}/threads?after=${inB}`,
        })
        assertError(t, adminOfB, 400, 'KH_BAD_REQUEST', 'a readable thread of another list')
      })

      t.test('q: title contains, any case, % and _ taken literally', async (t) => {
        const search = await newGroup('search')
        const titles = ['50% off', '500 off', 'under_score', 'underXscore', 'MiXeD Case', 'other']
        const id: Record<string, string> = {}
        for (const title of titles) id[title] = await forum.seedThread(search.id, 'dana', title)
        const cases: [string, string[]][] = [
          ['%', ['50% off']],
          ['0%', ['50% off']],
          ['_', ['under_score']],
          ['r_s', ['under_score']],
          ['mixed case', ['MiXeD Case']],
          ['MIXED', ['MiXeD Case']],
          ['OFF', ['500 off', '50% off']],
          ['nothing like it', []],
        ]
        for (const [q, expected] of cases) {
          const response = await list(
            search.token,
            `/groups/${search.id}/threads?q=${encodeURIComponent(q)}`,
          )
          t.equal(response.statusCode, 200, `q=${q}`)
          t.same(
            response.json().map((row: Listed) => row.title),
            expected,
            `q=${q}: newest first`,
          )
        }
        const first = await list(search.token, `/groups/${search.id}/threads?q=off&limit=1`)
        const next = await list(
          search.token,
          `/groups/${search.id}/threads?q=off&limit=1&after=${ids(first)[0]}`,
        )
        t.same(ids(next), [id['50% off']], 'q and after together')
      })

      t.test('postCount and lastPostAt, without posts and with several', async (t) => {
        const counted = await newGroup('counted')
        const quiet = await forum.seedThread(counted.id, 'dana', 'quiet')
        const busy = await forum.seedThread(counted.id, 'dana', 'busy')
        await forum.db.pool.query(
          `INSERT INTO posts (thread_id, author, content, created_at)
           SELECT $1, 'dana', 'post ' || i, timestamptz '2026-02-03T04:05:06.789Z' - i * interval '1 h'
           FROM generate_series(0, 2) AS i`,
          [busy],
        )
        // Posts in group B: never counted, never shown to group A's members.
        const inB = await forum.seedThread(groupB, 'carol', 'busy in B')
        await forum.seedPost(inB, 'carol')
        await forum.seedPost(inB, 'carol')

        const response = await list(counted.token, `/groups/${counted.id}/threads`)
        t.equal(response.statusCode, 200)
        t.same(
          response.json().map(({ id, postCount, lastPostAt }: Listed) => ({
            id,
            postCount,
            lastPostAt,
          })),
          [
            { id: busy, postCount: 3, lastPostAt: '2026-02-03T04:05:06.789Z' },
            { id: quiet, postCount: 0, lastPostAt: null },
          ],
        )
        t.same(Object.keys(response.json()[0]).sort(), [
          'created_at',
          'created_by',
          'group_id',
          'id',
          'lastPostAt',
          'postCount',
          'title',
        ])

        const ofA = await forum.request('alice', {
          method: 'GET',
          url: `/groups/${groupA}/threads`,
        })
        t.equal(ofA.statusCode, 200)
        t.ok(
          ofA.json().every((row: Listed) => row.group_id === groupA),
          "group A's list holds only group A's threads",
        )
        const { rows: counts } = await forum.db.pool.query<{ id: string; n: number }>(
          `SELECT t.id, count(p.id)::int AS n FROM discussion_threads t
           LEFT JOIN posts p ON p.thread_id = t.id WHERE t.group_id = $1 GROUP BY t.id`,
          [groupA],
        )
        t.same(
          Object.fromEntries(ofA.json().map((row: Listed) => [row.id, row.postCount])),
          Object.fromEntries(counts.map((row) => [row.id, row.n])),
          "each count is its own thread's posts",
        )
        const ofB = await forum.request('admin', {
          method: 'GET',
          url: `/groups/${groupB}/threads`,
        })
        t.match(
          ofB.json().find((row: Listed) => row.id === inB),
          { postCount: 2, lastPostAt: String },
          "an admin sees group B's counts",
        )
        const carolOfA = await forum.request('carol', {
          method: 'GET',
          url: `/groups/${groupA}/threads`,
        })
        assertError(t, carolOfA, 403, 'KH_FORBIDDEN', "group B's member cannot list group A")
      })
    })
  })
}
