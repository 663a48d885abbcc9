/**
 * The runtime role changes its own defaults (issue 14, item 3): `ALTER ROLE CURRENT_USER SET …`
 * needs no privilege, persists, applies to every new connection and survives `RESET ALL`. The
 * checks report each default with the statement that removes it; an operator's own default passes
 * only when allowed with its exact value. Break (as the runtime role) → detect → fix.
 */
import t from 'tap'
import pg from 'pg'
import { checkDatabase, type CheckDatabaseOptions } from '../../src/db/check-database.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { createBaseline } from '../helpers/roles.ts'

const db = await createTestDatabase(t)
const base = await createBaseline(db)
const r = `"${base.runtime.name}"`

/** Runs SQL on a new connection of the runtime role, as an injection would. */
async function asRuntime(sql: string) {
  const client = new pg.Client({ connectionString: base.runtimeUrl })
  await client.connect()
  try {
    return await client.query(sql)
  } finally {
    await client.end()
  }
}

/** The checks through a runtime-role pool: they run on a new connection of their own. */
async function check(options: CheckDatabaseOptions = base.options) {
  const pool = new pg.Pool({ connectionString: base.runtimeUrl, max: 1 })
  try {
    return await checkDatabase(pool, options)
  } finally {
    await pool.end()
  }
}

/** The statement of a finding's fix (what precedes its explanation in parentheses). */
const statementOf = (fix: string) => fix.slice(0, fix.indexOf(';') + 1)

t.test('the runtime role sets its own defaults: reported, each with its fix', async (t) => {
  t.same(await check(), [], 'the baseline passes')
  await asRuntime(`ALTER ROLE CURRENT_USER SET default_transaction_read_only = on;
    ALTER ROLE CURRENT_USER IN DATABASE ${db.name} SET statement_timeout = '10min';
    ALTER ROLE CURRENT_USER SET search_path = pg_temp, app`)
  // (search_path = pg_temp makes current_schemas() fail without TEMPORARY: the checks still run.)
  const [, persisted] = (await asRuntime(
    'RESET ALL; SHOW default_transaction_read_only',
  )) as unknown as pg.QueryResult[]
  t.same(persisted?.rows, [{ default_transaction_read_only: 'on' }], 'RESET ALL keeps a default')

  const findings = await check()
  t.same(
    findings.map((f) => [f.code, statementOf(f.fix)]).sort(),
    [
      [
        'KH_DB_ROLE_SETTING',
        `ALTER ROLE ${base.runtime.name} IN DATABASE ${db.name} RESET statement_timeout;`,
      ],
      [
        'KH_DB_ROLE_SETTING',
        `ALTER ROLE ${base.runtime.name} RESET default_transaction_read_only;`,
      ],
      ['KH_DB_ROLE_SETTING', `ALTER ROLE ${base.runtime.name} RESET search_path;`],
    ].sort(),
  )
  for (const f of findings) {
    t.match(f.message, /has a default for the runtime role .* survives RESET ALL/)
    t.notMatch(f.message, /10min|pg_temp/, 'values are not echoed (a default may hold a secret)')
  }
  for (const f of findings) await base.sql(statementOf(f.fix))
  t.same(await check(), [], 'fixed: no finding')
})

t.test("an operator's default passes only with the allowed value", async (t) => {
  const allowed = { ...base.options, allowedSettings: { statement_timeout: '30s' } }
  await base.sql(`ALTER ROLE ${r} SET statement_timeout = '30s'`)
  t.teardown(() => base.sql(`ALTER ROLE ${r} RESET statement_timeout`))
  t.match(await check(), [{ code: 'KH_DB_ROLE_SETTING' }], 'not allowed by default')
  t.same(await check(allowed), [], 'allowed with its value')

  await asRuntime(`ALTER ROLE CURRENT_USER SET statement_timeout = '1min'`)
  t.match(await check(allowed), [{ code: 'KH_DB_ROLE_SETTING' }], 'the runtime role changed it')
  await base.sql(`ALTER ROLE ${r} SET statement_timeout = '30s'`)
  t.same(await check(allowed), [])
})

t.test('a database default applies to every role, the runtime role too', async (t) => {
  await base.sql(`ALTER DATABASE ${db.name} SET idle_in_transaction_session_timeout = '1h'`)
  const [finding] = await check()
  t.match(finding, {
    code: 'KH_DB_ROLE_SETTING',
    message: new RegExp(`for every role in ${db.name}`),
  })
  await base.sql(statementOf(finding!.fix))
  t.same(await check(), [])
})
