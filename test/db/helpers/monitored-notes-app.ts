/**
 * A Fastify app in 'rls' mode on a keyhole database, its monitor running every 20 ms, with a
 * public `/health` that asserts health and `GET /notes`; checked healthy and serving alice (a
 * member of group A) before it is returned. The monitor tests then break the database one way and
 * watch `/health` turn 503.
 */
import type pg from 'pg'
import type { Test } from 'tap'
import { bearer, buildApp, mint } from '../../plugins/helpers/app.ts'
import { notesPolicies, type KeyholeDatabase } from './keyhole.ts'

export async function monitoredNotesApp(t: Test, k: KeyholeDatabase, pool: pg.Pool) {
  const { app } = await buildApp(
    t,
    {
      database: { pool, policies: notesPolicies, signingKey: k.signingKey },
      checks: { migrationRole: k.migrator.name },
      monitor: { intervalMs: 20 },
    },
    (app) => {
      app.get('/health', { config: { keyhole: { public: true } } }, async () => {
        app.keyhole.assertHealthy()
        return 'ok'
      })
      app.get('/notes', async (request) => (await request.db.select('notes')).length)
    },
  )
  const alice = bearer(
    await mint({ sub: 'alice', permissions: [{ group: k.groupA, role: 'member' }] }),
  )
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode, 200)
  return { app, alice }
}
