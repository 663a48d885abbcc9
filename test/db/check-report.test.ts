/**
 * assertDatabaseSecure: a readable report of every finding (code and fix), never a password; and
 * the options that change what is checked.
 */
import t from 'tap'
import pg from 'pg'
import { InsecureDatabase } from '../../src/errors.ts'
import { assertDatabaseSecure, checkDatabase } from '../../src/db/check-database.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { createBaseline } from '../helpers/roles.ts'

const db = await createTestDatabase(t)
const base = await createBaseline(db)
const r = `"${base.runtime.name}"`
const pool = new pg.Pool({ connectionString: base.runtimeUrl, max: 2 })
t.teardown(() => pool.end())

t.test('a secure database passes, through a Pool too', async (t) => {
  await t.resolves(assertDatabaseSecure(pool, base.options))
})

t.test('every finding is in the report with its code and fix; no password', async (t) => {
  await base.sql(`GRANT TRUNCATE ON app.posts TO ${r}; GRANT CREATE ON SCHEMA app TO ${r};
                  ALTER TABLE app.comments NO FORCE ROW LEVEL SECURITY`)
  t.teardown(() =>
    base.sql(`REVOKE TRUNCATE ON app.posts FROM ${r}; REVOKE CREATE ON SCHEMA app FROM ${r};
              ALTER TABLE app.comments FORCE ROW LEVEL SECURITY`),
  )
  const error = await assertDatabaseSecure(pool, base.options).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(error, InsecureDatabase)
  const insecure = error as InsecureDatabase
  t.equal(insecure.code, 'KH_INSECURE_DATABASE')
  t.same(
    insecure.findings.map((f) => f.code),
    ['KH_DB_RLS_NOT_FORCED', 'KH_DB_TABLE_PRIVILEGE', 'KH_DB_SCHEMA_CREATE'],
    "in the checks' order",
  )
  for (const f of insecure.findings) {
    t.ok(insecure.message.includes(`${f.code}: ${f.message}`), `${f.code} is reported`)
    t.ok(insecure.message.includes(`fix: ${f.fix}`), `with its fix`)
    t.ok(Object.isFrozen(f))
  }
  t.match(insecure.message, /3 findings/)
  for (const secret of [base.runtime.password, base.migrator.password]) {
    t.notOk(insecure.message.includes(secret), 'no password in the report')
    t.notOk(JSON.stringify(insecure).includes(secret), 'nor in its JSON')
  }
})

t.test('a superuser: its attributes alone, the rest cannot be judged', async (t) => {
  await base.sql(`ALTER ROLE ${r} SUPERUSER CREATEDB; GRANT TRUNCATE ON app.posts TO ${r}`)
  t.teardown(() =>
    base.sql(`ALTER ROLE ${r} NOSUPERUSER NOCREATEDB; REVOKE TRUNCATE ON app.posts FROM ${r}`),
  )
  const client = new pg.Client({ connectionString: base.runtimeUrl })
  await client.connect()
  t.teardown(() => client.end())
  t.same(
    (await checkDatabase(client, base.options)).map((f) => f.code),
    ['KH_DB_SUPERUSER', 'KH_DB_CREATEDB'],
  )
})

t.test("the body of keyhole's functions, when the expectation carries its hash", async (t) => {
  const { rows } = await db.pool.query<{ sig: string; sha: string }>(
    `SELECT p.oid::regprocedure::text AS sig, encode(sha256(convert_to(p.prosrc, 'UTF8')), 'hex') AS sha
     FROM pg_proc p WHERE p.pronamespace = 'keyhole'::regnamespace ORDER BY 1`,
  )
  const options = {
    ...base.options,
    keyholeFunctions: rows.map((row) => ({ signature: row.sig, sourceSha256: row.sha })),
  }
  t.same(await checkDatabase(pool, options), [], 'as installed')
  await base.sql(`CREATE OR REPLACE FUNCTION keyhole.is_admin() RETURNS boolean LANGUAGE sql STABLE
                    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT true $$`)
  const findings = await checkDatabase(pool, options)
  t.match(findings, [
    { code: 'KH_DB_KEYHOLE_FUNCTION_ALTERED', message: /is_admin\(\).*body differs/ },
  ])
  t.equal(findings.length, 1)
  await base.sql(`CREATE OR REPLACE FUNCTION keyhole.is_admin() RETURNS boolean LANGUAGE sql STABLE
                    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT false $$`)
  t.same(await checkDatabase(pool, options), [], 'fixed')
})

t.test('signingKeyTable false: the signing key is not looked for', async (t) => {
  const options = { ...base.options, signingKeyTable: false as const }
  t.same(await checkDatabase(pool, options), [])
  await base.sql(`GRANT SELECT ON keyhole.signing_key TO ${r}`)
  t.teardown(() => base.sql(`REVOKE SELECT ON keyhole.signing_key FROM ${r}`))
  t.same(await checkDatabase(pool, options), [], 'not checked')
  t.match(await checkDatabase(pool, base.options), [{ code: 'KH_DB_SIGNING_KEY_READABLE' }])
})

t.test('invalid options are refused before any query', async (t) => {
  const counting = { calls: 0, query: async () => (counting.calls++, { rows: [] }) }
  await t.rejects(
    checkDatabase(counting, { guardedTables: [{ table: 'posts', operations: ['select'] }] }),
    {
      code: 'KH_INVALID_OPTIONS',
    },
  )
  t.equal(counting.calls, 0)
})
