/**
 * A server started with another capability-signing key than the one `keyhole setup` installed
 * (say, after `keyhole setup --generate-key` without redeploying): every catalog check passes, yet
 * the database refuses every capability the server signs, so every guarded request answers 503.
 * In 'rls' mode the checks sign a capability that grants nothing with the server's key and ask
 * the database to accept it: a refusal is KH_DB_SIGNING_KEY_MISMATCH, so start-up refuses and the
 * monitor turns /health to 503.
 */
import t from 'tap'
import { checkDatabase } from '../../src/db/check-database.ts'
import { generateSigningKey, hmacPads, parseSigningKey } from '../../src/db/signing-key.ts'
import { buildApp } from '../plugins/helpers/app.ts'
import { createKeyholeDatabase, notesPolicies } from './helpers/keyhole.ts'
import { monitoredNotesApp } from './helpers/monitored-notes-app.ts'

const k = await createKeyholeDatabase(t)
const wrongKey = generateSigningKey()
const checks = { guardedTables: [{ table: 'public.notes', operations: ['select' as const] }] }

/** What `keyhole setup --generate-key` does to the database: installs another key. */
async function install(key: string) {
  const { innerPad, outerPad } = hmacPads(parseSigningKey(key))
  await k.db.pool.query('UPDATE keyhole.signing_key SET inner_pad = $1, outer_pad = $2', [
    innerPad,
    outerPad,
  ])
}

t.test('checkDatabase: the installed key passes, another is the finding', async (t) => {
  const pool = k.runtimePool(1)
  t.same(await checkDatabase(pool, { ...checks, signingKey: k.signingKey }), [])
  const findings = await checkDatabase(pool, { ...checks, signingKey: wrongKey })
  t.same(findings, [
    {
      code: 'KH_DB_SIGNING_KEY_MISMATCH',
      message:
        "the database refused a capability signed with the server's signingKey: the key differs from the one `keyhole setup` installed, or the clocks differ",
      fix: "deploy the installed key or re-run setup with the server's key",
    },
  ])
  t.notMatch(JSON.stringify(findings), wrongKey, 'the key is in no finding')
  t.same(
    await checkDatabase(pool, { ...checks, signingKey: wrongKey, mode: 'guard' }),
    await checkDatabase(pool, { ...checks, mode: 'guard' }),
    "'guard' mode sets no capability: no probe",
  )
  const client = await pool.connect()
  t.teardown(() => client.release())
  for (const key of [k.signingKey, wrongKey]) {
    await checkDatabase(client, { ...checks, signingKey: key })
    t.same(
      (await client.query('SELECT keyhole.subject() AS subject')).rows,
      [{ subject: null }],
      'on a given session the probe is rolled back: no capability left, the session usable',
    )
  }
})

t.test('the key is validated, never echoed', async (t) => {
  const pool = k.runtimePool(1)
  await t.rejects(checkDatabase(pool, { ...checks, signingKey: 'short' }), {
    code: 'KH_INVALID_OPTIONS',
    message: /^Invalid option checkDatabase\.signingKey: expected at least 32/,
  })
})

t.test('without set_capability, the functions check reports it, not a mismatch', async (t) => {
  const pool = k.runtimePool(1)
  const rename = (from: string, to: string) =>
    k.db.pool.query(`ALTER FUNCTION keyhole.${from}(text) RENAME TO ${to}`)
  await rename('set_capability', 'set_capability_moved')
  t.teardown(() => rename('set_capability_moved', 'set_capability'))
  const findings = await checkDatabase(pool, { ...checks, signingKey: wrongKey })
  t.ok(findings.some((f) => f.code === 'KH_DB_KEYHOLE_FUNCTION_ALTERED'))
  t.notOk(findings.some((f) => f.code === 'KH_DB_SIGNING_KEY_MISMATCH'))
})

t.test('the adapter: starts with the installed key, refuses another', async (t) => {
  const pool = k.runtimePool(2)
  const options = { checks: { migrationRole: k.migrator.name }, monitor: false as const }
  const { app } = await buildApp(t, {
    database: { pool, policies: notesPolicies, signingKey: k.signingKey },
    ...options,
  })
  t.ok(app.keyhole.healthy, 'the right key starts')
  await t.rejects(
    buildApp(t, {
      database: { pool, policies: notesPolicies, signingKey: wrongKey },
      ...options,
    }),
    { code: 'KH_INSECURE_DATABASE', message: /KH_DB_SIGNING_KEY_MISMATCH/ },
  )
})

t.test('the monitor: another key installed turns /health to 503, then back', async (t) => {
  const pool = k.runtimePool(2)
  const { app, alice } = await monitoredNotesApp(t, k, pool)

  await install(wrongKey)
  t.teardown(() => install(k.signingKey))
  while (app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 503)
  t.equal(health.json().code, 'KH_UNAVAILABLE')

  await install(k.signingKey)
  while (!app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode, 200)
})
