/**
 * Encrypted columns behind both adapters: `request.db` reads them in clear; a ciphertext moved to
 * another row answers 500 `KH_DECRYPT_FAILED` with the generic body (never a plaintext) and is
 * logged with its code, never a value; policies with encrypted columns and no data key refuse to
 * register.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import t from 'tap'
import type { Test } from 'tap'
import express from 'express'
import Fastify from 'fastify'
import { createKeyhole, dataKeys, definePolicies, inGroup, type DataKeys } from '../../src/index.ts'
import { capabilities as fastifyKeyhole } from '../../plugins/fastify.ts'
import { capabilities as expressKeyhole, keyholeErrors } from '../../plugins/express.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { G1, baseOptions, mint } from '../plugins/helpers/keyhole-app.ts'
import { memoryLogger, serve } from '../plugins/helpers/express-app.ts'

const policies = definePolicies({
  notes: {
    read: inGroup('group_id', 'member'),
    insert: inGroup('group_id', 'member'),
    encrypted: ['body'],
  },
})
const db = await createTestDatabase(t)
await db.pool.query(
  'CREATE TABLE notes (id uuid PRIMARY KEY, group_id uuid NOT NULL, body text NOT NULL)',
)
const keys = dataKeys({ current: randomBytes(32) })
const [first, second] = [randomUUID(), randomUUID()]
const database = { pool: db.pool, policies, mode: 'guard', dataKeys: keys } as const

interface Answer {
  status: number
  body: string
  logged: string
}

async function fastifyAnswer(t: Test, url: string, token: string): Promise<Answer> {
  let logged = ''
  const stream = new Writable({
    write(chunk, _encoding, done) {
      logged += String(chunk)
      done()
    },
  })
  const app = Fastify({ logger: { level: 'error', stream } })
  t.teardown(() => app.close())
  await app.register(fastifyKeyhole, { ...baseOptions, database, checks: false })
  app.get('/notes/:id', async (request) =>
    request.db.select('notes', { id: (request.params as { id: string }).id }),
  )
  const res = await app.inject({ url, headers: { authorization: `Bearer ${token}` } })
  return { status: res.statusCode, body: res.body, logged }
}

async function expressAnswer(t: Test, url: string, token: string): Promise<Answer> {
  const logger = memoryLogger()
  const keyhole = expressKeyhole({ ...baseOptions, database, checks: false, logger })
  const app = express()
  app.use(keyhole)
  app.get('/notes/:id', async (req, res, next) => {
    try {
      res.json(await req.db.select('notes', { id: req.params.id }))
    } catch (error) {
      next(error)
    }
  })
  app.use(keyholeErrors())
  await keyhole.ready()
  t.teardown(() => keyhole.close())
  const { base } = await serve(t, app)
  const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.text(), logged: JSON.stringify(logger.lines) }
}

const adapters = [
  ['fastify', fastifyAnswer],
  ['express', expressAnswer],
] as const

t.test(
  'request.db reads in clear; a moved ciphertext answers 500 with the generic body',
  async (t) => {
    const token = await mint({ permissions: [{ group: G1, role: 'member' }] })
    // Written through keyhole, then the first row's ciphertext copied onto the second row.
    const worker = createKeyhole(database)
    const member = worker.capability({ subject: 'w', groups: { member: [G1] } })
    await worker.run(member, (db) =>
      db.insert(
        'notes',
        [
          { id: first, group_id: G1, body: 'first secret' },
          { id: second, group_id: G1, body: 'second secret' },
        ],
        { chosenKeys: ['id'] },
      ),
    )
    for (const [name, answer] of adapters) {
      const ok = await answer(t, `/notes/${first}`, token)
      t.equal(ok.status, 200, name)
      t.match(JSON.parse(ok.body), [{ id: first, body: 'first secret' }], `${name}: in clear`)
    }
    await db.pool.query(
      'UPDATE notes SET body = (SELECT body FROM notes WHERE id = $1) WHERE id = $2',
      [first, second],
    )
    for (const [name, answer] of adapters) {
      const { status, body, logged } = await answer(t, `/notes/${second}`, token)
      t.equal(status, 500, name)
      t.same(
        JSON.parse(body),
        {
          statusCode: 500,
          error: 'Internal Server Error',
          message: 'A stored value failed to decrypt',
          code: 'KH_DECRYPT_FAILED',
        },
        `${name}: the generic body`,
      )
      t.match(logged, 'KH_DECRYPT_FAILED', `${name}: the code is logged`)
      t.match(logged, 'notes.body', `${name}: with the table and column`)
      t.notMatch(logged, /secret/, `${name}: never a value in the log`)
    }
  },
)

t.test('encrypted columns without a data key: both adapters refuse to register', async (t) => {
  const saved = process.env.KEYHOLE_DATA_KEY
  delete process.env.KEYHOLE_DATA_KEY
  t.teardown(() => {
    if (saved !== undefined) process.env.KEYHOLE_DATA_KEY = saved
  })
  const keyless = { pool: db.pool, policies, mode: 'guard' } as const
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(
    async () => {
      await app.register(fastifyKeyhole, { ...baseOptions, database: keyless, checks: false })
    },
    { code: 'KH_DATA_KEY_MISSING', message: /database\.dataKeys/ },
  )
  t.throws(
    () =>
      expressKeyhole({ ...baseOptions, database: keyless, checks: false, logger: memoryLogger() }),
    { code: 'KH_DATA_KEY_MISSING', message: /database\.dataKeys/ },
  )
  const bad: DataKeys = { currentKeyId: 'k1', key: () => new Uint8Array(16) }
  t.throws(
    () =>
      expressKeyhole({
        ...baseOptions,
        database: { ...keyless, dataKeys: bad },
        checks: false,
        logger: memoryLogger(),
      }),
    { code: 'KH_DATA_KEY_MISSING' },
  )
})
