/**
 * Malformed input: every case answers 400 with `KH_BAD_REQUEST` and writes nothing. The callers are
 * allowed to do the operation, so only the input can be what stops them.
 */
import t from 'tap'
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
