/**
 * What only the Express forum has: its health route, its answers for what is not keyhole's (a
 * body over the limit, an unknown route, an unexpected error) and how it starts and stops: a bad
 * option or a port that cannot open ends everything it opened and rethrows.
 */
import t from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { buildExpress, forumErrors } from '../../example-app/express/app.ts'
import { assertError, startForum } from './helpers/forum.ts'

const forum = await startForum(t, { adapter: 'express' })

t.test('GET /health: public, 200 while the database checks pass', async (t) => {
  const response = await forum.request(undefined, { method: 'GET', url: '/health' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok' })
})

t.test('an unknown route: 401 without a token, 404 KH_NOT_FOUND with one', async (t) => {
  assertError(t, await forum.request(undefined, { url: '/nowhere' }), 401, 'KH_TOKEN_MISSING')
  assertError(t, await forum.request('alice', { url: '/nowhere' }), 404, 'KH_NOT_FOUND')
})

t.test('a body over the limit: 413, nothing written', async (t) => {
  const before = await forum.count('groups')
  const response = await forum.request('admin', {
    method: 'POST',
    url: '/groups',
    payload: { name: 'x'.repeat(200_000) },
  })
  assertError(t, response, 413, 'PAYLOAD_TOO_LARGE')
  t.equal(await forum.count('groups'), before)
})

t.test(
  'an unexpected error: 500 with the generic body; the details go to the log only',
  async (t) => {
    for (const withLogger of [true, false]) {
      const logged: unknown[] = []
      const logger = {
        fatal() {},
        error: (details: object) => void logged.push(details),
        warn() {},
        info() {},
        debug() {},
      }
      const writes: string[] = []
      const write = process.stderr.write
      process.stderr.write = ((chunk: string) => writes.push(chunk) > 0) as typeof write
      const app = express()
      app.get('/boom', () => {
        throw new Error('the details of a bug')
      })
      app.use(forumErrors(withLogger ? logger : undefined))
      const server = app.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const { port } = server.address() as AddressInfo
      try {
        const response = await fetch(`http://127.0.0.1:${port}/boom`)
        t.equal(response.status, 500)
        const body = await response.text()
        t.same(JSON.parse(body), {
          statusCode: 500,
          error: 'Internal Server Error',
          message: 'Internal server error',
          code: 'INTERNAL',
        })
        t.notMatch(body, 'details of a bug')
      } finally {
        process.stderr.write = write
        server.close()
      }
      const log = withLogger ? JSON.stringify(logged) : writes.join('')
      t.match(log, 'the details of a bug', withLogger ? 'to the logger' : 'to stderr')
    }
  },
)

t.test('after the headers left, the error goes on to Express (the response is cut)', async (t) => {
  const app = express()
  app.get('/half', (_req, res) => {
    res.write('partial')
    throw 'not even an Error'
  })
  app.get('/odd', () => {
    throw 'not even an Error'
  })
  app.use(forumErrors({ fatal() {}, error() {}, warn() {}, info() {}, debug() {} }))
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as AddressInfo
  const half = await fetch(`http://127.0.0.1:${port}/half`)
  t.equal(half.status, 200, 'the status line had left')
  await t.rejects(half.text(), 'but the body is cut short: no false success')
  t.equal((await fetch(`http://127.0.0.1:${port}/odd`)).status, 500, 'a thrown non-Error: 500')
})

t.test('a bad option: the pool is ended and the error rethrown', async (t) => {
  await t.rejects(
    buildExpress({
      databaseUrl: forum.db.url,
      jwtSecret: 'a-test-secret-of-at-least-32-bytes!',
      jwtIssuer: '',
      jwtAudience: 'a',
      dataKeys: forum.dataKeys,
      roles: { migration: `${forum.db.prefix}_migrator`, runtime: `${forum.db.prefix}_app` },
    }),
    { code: 'KH_INVALID_OPTIONS' },
  )
})

t.test('a port that cannot open: everything closed, the error rethrown', async (t) => {
  const other = await buildExpress({
    databaseUrl: forum.db.url,
    ...forum.settings,
    dataKeys: forum.dataKeys,
    roles: { migration: `${forum.db.prefix}_migrator`, runtime: `${forum.db.prefix}_app` },
    logger: { fatal() {}, error() {}, warn() {}, info() {}, debug() {} },
  })
  const taken = new URL(forum.baseUrl as string)
  await t.rejects(other.listen(Number(taken.port), taken.hostname), { code: 'EADDRINUSE' })
  await t.resolves(other.close(), 'closing again is harmless')
})
