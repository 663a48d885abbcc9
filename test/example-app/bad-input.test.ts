/**
 * Malformed input: every case answers 400 with `KH_BAD_REQUEST` and writes nothing. The callers are
 * allowed to do the operation, so only the input can be what stops them.
 */
import t from 'tap'
import { BadRequest, bindPolicies, defineCapability, type Queryable } from 'keyhole'
import { policies } from '../../example-app/policies.ts'
import {
  listThreads,
  threadListQuery,
  type ThreadListQuery,
} from '../../example-app/thread-list.ts'
import { assertError, forumAdapters, startForum, type Caller } from './helpers/forum.ts'

// The same refusals from the Fastify forum and the Express one.
for (const adapter of forumAdapters) {
  t.test(adapter, async (t) => {
    const forum = await startForum(t, { adapter })
    const thread = await forum.seedThread(forum.groupA, 'alice')
    await forum.seedPost(thread, 'alice')

    interface Route {
      caller: Caller
      method: 'POST' | 'PATCH'
      url: string
      field: string
      maxLength: number
    }

    const routes: Route[] = [
      { caller: 'admin', method: 'POST', url: '/groups', field: 'name', maxLength: 100 },
      {
        caller: 'alice',
        method: 'POST',
        url: `/groups/${forum.groupA}/threads`,
        field: 'title',
        maxLength: 200,
      },
      {
        caller: 'alice',
        method: 'PATCH',
        url: `/threads/${thread}`,
        field: 'title',
        maxLength: 200,
      },
      {
        caller: 'alice',
        method: 'POST',
        url: `/threads/${thread}/posts`,
        field: 'content',
        maxLength: 10_000,
      },
    ]

    /** Bodies sent as raw JSON text, so that broken JSON can be sent too. */
    function badBodies(field: string, maxLength: number): [string, string | undefined][] {
      const json = (value: unknown) => JSON.stringify(value)
      return [
        ['broken JSON', `{"${field}": "x"`],
        ['an empty body', ''],
        ['no body at all', undefined],
        ['JSON that is not an object', json('just a string')],
        ['an array', json([{ [field]: 'x' }])],
        ['null', 'null'],
        [`missing ${field}`, json({})],
        [`empty ${field}`, json({ [field]: '' })],
        [`${field} a number`, json({ [field]: 42 })],
        [`${field} a boolean`, json({ [field]: true })],
        [`${field} null`, json({ [field]: null })],
        [`${field} an array`, json({ [field]: ['x'] })],
        [`${field} an object`, json({ [field]: { x: 1 } })],
        [`${field} over ${maxLength} characters`, json({ [field]: 'x'.repeat(maxLength + 1) })],
        ['an unknown field', json({ [field]: 'ok', extra: 1 })],
        ['created_by from the body', json({ [field]: 'ok', created_by: 'mallory' })],
        ['author from the body', json({ [field]: 'ok', author: 'mallory' })],
        ['group_id from the body', json({ [field]: 'ok', group_id: forum.groupB })],
        ['a __proto__ key', `{"${field}": "ok", "__proto__": {"isAdmin": true}}`],
      ]
    }

    async function counts() {
      return [
        await forum.count('groups'),
        await forum.count('discussion_threads'),
        await forum.count('posts'),
      ]
    }

    t.test('malformed bodies: 400 KH_BAD_REQUEST, nothing written', async (t) => {
      const before = await counts()
      for (const route of routes) {
        for (const [name, payload] of badBodies(route.field, route.maxLength)) {
          const response = await forum.request(route.caller, {
            method: route.method,
            url: route.url,
            headers: payload === undefined ? {} : { 'content-type': 'application/json' },
            ...(payload === undefined ? {} : { payload }),
          })
          assertError(t, response, 400, 'KH_BAD_REQUEST', `${route.method} ${route.url}: ${name}`)
        }
      }
      t.same(await counts(), before, 'nothing written')
      const { rows } = await forum.db.pool.query(
        'SELECT title FROM discussion_threads WHERE id = $1',
        [thread],
      )
      t.same(rows, [{ title: 'seeded thread' }], 'the thread was not renamed')
    })

    t.test('the longest allowed values are accepted', async (t) => {
      for (const route of routes) {
        const response = await forum.request(route.caller, {
          method: route.method,
          url: route.url,
          payload: { [route.field]: 'é'.repeat(route.maxLength) },
        })
        t.equal(response.statusCode, route.method === 'PATCH' ? 200 : 201, `${route.url}`)
      }
    })

    const badIds = [
      'not-a-uuid',
      '123',
      '00000000-0000-0000-0000-00000000000',
      '00000000-0000-0000-0000-0000000000000',
      'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66',
      '6E8BC430-9C3A-11D9-9669-0800200C9A66',
      "1'; DROP TABLE posts; --",
    ]

    t.test(
      'a path ID that is not a canonical UUID: 400 KH_BAD_REQUEST, nothing written',
      async (t) => {
        const before = await counts()
        for (const id of badIds) {
          const path = encodeURIComponent(id)
          const requests: [string, string, unknown][] = [
            ['GET', `/groups/${path}`, undefined],
            ['POST', `/groups/${path}/invite-code`, undefined],
            ['GET', `/groups/${path}/threads`, undefined],
            ['POST', `/groups/${path}/threads`, { title: 'x' }],
            ['GET', `/threads/${path}`, undefined],
            ['PATCH', `/threads/${path}`, { title: 'x' }],
            ['DELETE', `/threads/${path}`, undefined],
            ['GET', `/threads/${path}/posts`, undefined],
            ['POST', `/threads/${path}/posts`, { content: 'x' }],
            ['DELETE', `/posts/${path}`, undefined],
          ]
          for (const [method, url, payload] of requests) {
            const response = await forum.request('admin', {
              method: method as 'GET',
              url,
              ...(payload === undefined ? {} : { payload: payload as object }),
            })
            assertError(t, response, 400, 'KH_BAD_REQUEST', `${method} ${url}`)
          }
        }
        t.same(await counts(), before, 'nothing written')
      },
    )

    t.test('a bad query string for the thread list: 400 KH_BAD_REQUEST', async (t) => {
      const queries = [
        'limit=0',
        'limit=101',
        'limit=abc',
        'limit=-1',
        'limit=1.5',
        'limit=1e2',
        'limit=050',
        'limit=',
        'limit=%2010',
        'limit=10&limit=20',
        'after=not-a-uuid',
        `after=${thread.toUpperCase()}`,
        `after=${thread}&after=${thread}`,
        `q=${'x'.repeat(201)}`,
        'q=a&q=b',
      ]
      for (const query of queries) {
        const response = await forum.request('alice', {
          method: 'GET',
          url: `/groups/${forum.groupA}/threads?${query}`,
        })
        assertError(t, response, 400, 'KH_BAD_REQUEST', query)
        t.notMatch(
          response.json().message,
          /abc|not-a-uuid|xxxx/,
          `${query}: the value is not echoed`,
        )
      }
      const fine = await forum.request('alice', {
        method: 'GET',
        url: `/groups/${forum.groupA}/threads?limit=100&q=${'x'.repeat(200)}&unknown=1`,
      })
      t.equal(fine.statusCode, 200, 'the largest allowed values; other parameters are ignored')
    })

    // The list's own functions, called without the route's schema: shared by both forums, so once.
    if (adapter === 'fastify') {
      t.test(
        'the thread list called directly with a bad query: 400 KH_BAD_REQUEST, no SQL sent',
        async (t) => {
          const sent: string[] = []
          const recording: Queryable = {
            query(config) {
              sent.push(config.text)
              return forum.db.pool.query(config)
            },
          }
          const alice = defineCapability({ subject: 'alice', groups: { member: [forum.groupA] } })
          // Untyped, as request.db is.
          const db = bindPolicies<any>(policies, recording, alice, {
            mode: 'rls',
            transaction: 'statement',
            dataKeys: forum.dataKeys,
          })
          const limit = 'querystring/limit must be a whole number from 1 to 100'
          const after = 'querystring/after must be a UUID in lower case'
          const q = 'querystring/q must be a text of at most 200 characters'
          // As a query string parser could hand them over (two values: an array), and as a
          // caller in JavaScript could (a number).
          const queries: [string, Record<string, unknown>, string][] = [
            ['limit 0', { limit: '0' }, limit],
            ['limit 101', { limit: '101' }, limit],
            ['limit abc', { limit: 'abc' }, limit],
            ['limit -1', { limit: '-1' }, limit],
            ['limit 1.5', { limit: '1.5' }, limit],
            ['limit 1e2', { limit: '1e2' }, limit],
            ['limit 050', { limit: '050' }, limit],
            ['limit empty', { limit: '' }, limit],
            ['limit with a space', { limit: ' 10' }, limit],
            ['limit with a newline', { limit: '10\n' }, limit],
            ['limit twice', { limit: ['10', '20'] }, limit],
            ['limit a number', { limit: 20 }, limit],
            ['limit null', { limit: null }, limit],
            ['after not a UUID', { after: 'not-a-uuid' }, after],
            ['after in upper case', { after: thread.toUpperCase() }, after],
            ['after with a quote', { after: `${thread}'` }, after],
            ['after twice', { after: [thread, thread] }, after],
            ['q of 201 characters', { q: 'x'.repeat(201) }, q],
            ['q of 201 emoji', { q: '\u{1F600}'.repeat(201) }, q],
            ['q twice', { q: ['a', 'b'] }, q],
            ['q a number', { q: 42 }, q],
            ['a good limit, a bad after', { limit: '10', after: 'x', q: 'a' }, after],
          ]
          for (const [name, query, message] of queries) {
            const wanted = {
              constructor: BadRequest,
              code: 'KH_BAD_REQUEST',
              statusCode: 400,
              message,
            }
            const bad = query as ThreadListQuery
            t.throws(() => threadListQuery(forum.groupA, bad), wanted, `threadListQuery: ${name}`)
            await t.rejects(listThreads(db, forum.groupA, bad), wanted, `listThreads: ${name}`)
          }
          t.same(sent, [], 'no statement reached the database')

          // Good queries (the largest allowed values among them) reach it: each list, and the
          // cursor's lookup before its list.
          for (const query of [
            { limit: '100', q: 'x'.repeat(200) },
            { limit: '1', q: '\u{1F600}'.repeat(200) },
            { after: thread, q: 'seeded' },
          ]) {
            t.same(
              await listThreads(db, forum.groupA, query),
              [],
              JSON.stringify(query).slice(0, 40),
            )
          }
          const page = await listThreads(db, forum.groupA, { limit: '100' })
          t.ok(page.length > 1 && page.every((row) => row.group_id === forum.groupA), 'group A')
          t.match(
            page.find((row) => row.id === thread),
            { postCount: Number, lastPostAt: Date, created_at: Date },
            'the seeded thread, with its posts',
          )
          // A well-formed cursor that is no thread of this list: only the lookup is sent.
          await t.rejects(
            listThreads(db, forum.groupA, { after: '00000000-0000-4000-8000-000000000000' }),
            { code: 'KH_BAD_REQUEST', message: 'querystring/after must be a thread of this list' },
          )
          t.equal(sent.length, 6, 'four lists and two cursor lookups sent')
        },
      )
    }

    t.test('a body that is not JSON at all: 415, nothing written', async (t) => {
      const before = await counts()
      const response = await forum.request('admin', {
        method: 'POST',
        url: '/groups',
        headers: { 'content-type': 'text/plain' },
        payload: 'name=x',
      })
      // Each framework names this refusal in its own words.
      const code = { fastify: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', express: 'UNSUPPORTED_MEDIA_TYPE' }
      assertError(t, response, 415, code[adapter])
      t.same(await counts(), before)
    })
  })
}
