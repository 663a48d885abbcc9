/**
 * No silent mode (issue 13, item 4): an adapter in 'guard' mode never sets the capability, so on a
 * database where keyhole's policies are installed and forced every request would be refused (404).
 * Both adapters refuse to start there with KH_DB_GUARD_MODE_UNDER_RLS and its fix; the same
 * database serves in 'rls' mode. (A database option with neither a key nor a mode is refused at
 * registration: test/behaviour/helpers/bad-options.ts and test/http/adapter-options.test.ts.)
 */
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../plugins/helpers/app.ts'
import { startApp } from '../plugins/helpers/express-app.ts'
import { createKeyholeDatabase, notesPolicies } from './helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)

function runtimePool() {
  const pool = k.runtimePool(1)
  pool.on('error', () => {})
  return pool
}

const guardMode = (pool: pg.Pool) =>
  ({
    database: { pool, policies: notesPolicies, mode: 'guard' },
    checks: { migrationRole: k.migrator.name },
    monitor: false,
  }) as const

const underRls = {
  code: 'KH_INSECURE_DATABASE',
  message:
    /KH_DB_GUARD_MODE_UNDER_RLS: .*public\.notes.*'guard' mode.*\n\s+fix: set database\.mode: 'rls' with database\.signingKey.*without --policies/,
  findings: [{ code: 'KH_DB_GUARD_MODE_UNDER_RLS' }],
}

t.test("Fastify in 'guard' mode against forced RLS: start-up refused", async (t) => {
  await t.rejects(buildApp(t, guardMode(runtimePool())), underRls)
})

t.test("Express in 'guard' mode against forced RLS: ready() refused", async (t) => {
  const { keyhole } = await startApp(t, guardMode(runtimePool()), () => {}, { ready: false })
  await t.rejects(keyhole.ready(), underRls)
})

t.test("the same database in 'rls' mode starts", async (t) => {
  const { app } = await buildApp(t, {
    database: { pool: runtimePool(), policies: notesPolicies, signingKey: k.signingKey },
    checks: { migrationRole: k.migrator.name },
    monitor: false,
  })
  t.equal(app.keyhole.healthy, true)
})
