/**
 * `setup` and `migrate`: roles with exactly the attributes and privileges keyhole relies on,
 * idempotent, and a database the start-up checks pass once the generated policies are applied.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { checkDatabase } from '../../src/db/check-database.ts'
import { KEYHOLE_FUNCTIONS } from '../../src/db/keyhole-sql.ts'
import { migrate } from '../../src/db/migrate.ts'
import { policySql, writePolicyMigration } from '../../src/db/policy-sql.ts'
import { setup } from '../../src/db/setup.ts'
import { hmacPads } from '../../src/db/signing-key.ts'
import { inGroup } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { startLoggedPostgres } from './helpers/logged-postgres.ts'

const db = await createTestDatabase(t)
const password = () => randomBytes(18).toString('base64url')
const migrator = { name: `${db.prefix}_migrator`, password: password() }
const runtime = { name: `${db.prefix}_runtime`, password: password() }
const options = { migrationRole: migrator, runtimeRole: runtime, schemas: ['app'] }
const policies = definePolicies({
  'app.posts': { read: inGroup('group_id', 'member'), insert: inGroup('group_id', 'member') },
})

// Everything awaited at the top level comes before the first subtest.
const first = await setup(db.url, options)
const dir = await mkdtemp(join(tmpdir(), 'keyhole-migrate-'))
await writeFile(
  join(dir, '000001.do.posts.sql'),
  `CREATE TABLE app.posts (id serial PRIMARY KEY, group_id uuid NOT NULL, title text NOT NULL);`,
)
const migratorUrl = db.urlAs(migrator.name, migrator.password)

t.test('bad options are refused before anything is sent', async (t) => {
  const bad: [string, object, string][] = [
    [
      'role name with a quote',
      { migrationRole: { ...migrator, name: 'a"b' } },
      'KH_INVALID_IDENTIFIER',
    ],
    [
      'role name pg_*',
      { runtimeRole: { ...runtime, name: 'pg_monitor' } },
      'KH_INVALID_IDENTIFIER',
    ],
    ['same role twice', { runtimeRole: { ...migrator } }, 'KH_INVALID_OPTIONS'],
    ['short password', { runtimeRole: { ...runtime, password: 'short' } }, 'KH_INVALID_OPTIONS'],
    ['schema keyhole', { schemas: ['keyhole'] }, 'KH_INVALID_OPTIONS'],
    ['no schema', { schemas: [] }, 'KH_INVALID_OPTIONS'],
    ['bad schema', { schemas: ['a;b'] }, 'KH_INVALID_IDENTIFIER'],
    ['short key', { signingKey: 'c2hvcnQ' }, 'KH_INVALID_OPTIONS'],
  ]
  for (const [name, change, code] of bad) {
    await t.rejects(
      setup('postgres://unused@127.0.0.1:1/x', { ...options, ...change }),
      { code },
      name,
    )
  }
})

t.test('setup returns the key it stored, not enumerable', async (t) => {
  t.match(first.signingKey, /^[A-Za-z0-9_-]{43}$/)
  t.same(
    Object.keys(first),
    ['repairs', 'created', 'capabilityStore'],
    'the key is not among the enumerable keys',
  )
  t.notMatch(JSON.stringify(first), first.signingKey)
})

t.test('the roles have exactly the safe attributes', async (t) => {
  const { rows } = await db.pool.query(
    `SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication,
       rolpassword LIKE 'SCRAM-SHA-256$%' AS scram
     FROM pg_authid WHERE rolname = ANY($1) ORDER BY rolname`,
    [[migrator.name, runtime.name]],
  )
  for (const row of rows) {
    t.same(
      { ...row, rolname: undefined },
      {
        rolname: undefined,
        rolcanlogin: true,
        rolsuper: false,
        rolbypassrls: false,
        rolcreatedb: false,
        rolcreaterole: false,
        rolreplication: false,
        scram: true,
      },
      row.rolname,
    )
  }
})

t.test('both roles log in with their passwords', async (t) => {
  for (const role of [migrator, runtime]) {
    const c = new pg.Client({ connectionString: db.urlAs(role.name, role.password) })
    await c.connect()
    t.same((await c.query('SELECT current_user AS u')).rows, [{ u: role.name }])
    await c.end()
  }
})

t.test('migrate: keyhole first, then the application, then the policies', async (t) => {
  const result = await migrate(migratorUrl, {
    migrationsDir: dir,
    policies,
    runtimeRole: runtime.name,
  })
  t.same(
    result,
    { keyhole: [], application: [1], policies: true, repairs: [] },
    'keyhole was applied by setup; a new table needs no repair',
  )
  t.same(
    await migrate(migratorUrl, { migrationsDir: dir }),
    { keyhole: [], application: [], policies: false, repairs: [] },
    'idempotent',
  )
  const { rows } = await db.pool.query(
    `SELECT polname::text FROM pg_policy WHERE polrelid = 'app.posts'::regclass ORDER BY 1`,
  )
  t.same(rows, [{ polname: 'keyhole_insert' }, { polname: 'keyhole_select' }])
})

t.test(
  'a table the migration role creates later: DML for the runtime role, nothing more',
  async (t) => {
    const { rows } = await db.pool.query(
      `SELECT p AS privilege, has_table_privilege($1, 'app.posts', p) AS held
     FROM unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER',
       'SELECT WITH GRANT OPTION']) AS p`,
      [runtime.name],
    )
    t.same(Object.fromEntries(rows.map((r) => [r.privilege, r.held])), {
      SELECT: true,
      INSERT: true,
      UPDATE: true,
      DELETE: true,
      TRUNCATE: false,
      REFERENCES: false,
      TRIGGER: false,
      'SELECT WITH GRANT OPTION': false,
    })
    const seq = await db.pool.query(
      `SELECT has_sequence_privilege($1, 'app.posts_id_seq', 'USAGE, SELECT') AS usage,
       has_sequence_privilege($1, 'app.posts_id_seq', 'UPDATE') AS update,
       has_database_privilege($1, current_database(), 'CREATE') AS db_create,
       has_database_privilege($1, current_database(), 'TEMPORARY') AS temp,
       has_schema_privilege($1, 'public', 'CREATE') AS public_create,
       has_schema_privilege($1, 'app', 'CREATE') AS app_create,
       has_table_privilege($1, 'keyhole.signing_key', 'SELECT') AS key,
       has_table_privilege($1, 'keyhole.app_schemaversion', 'SELECT') AS versions`,
      [runtime.name],
    )
    t.same(seq.rows, [
      {
        usage: true,
        update: false,
        db_create: false,
        temp: false,
        public_create: false,
        app_create: false,
        key: false,
        versions: false,
      },
    ])
  },
)

t.test('the start-up checks pass on what setup and migrate built', async (t) => {
  const c = new pg.Client({ connectionString: db.urlAs(runtime.name, runtime.password) })
  await c.connect()
  t.teardown(() => c.end())
  const findings = await checkDatabase(c, {
    guardedTables: [{ table: 'app.posts', operations: ['select', 'insert'] }],
    migrationRole: migrator.name,
    applicationSchemas: ['app'],
    keyholeFunctions: [...KEYHOLE_FUNCTIONS],
  })
  t.same(findings, [])
})

t.test('setup again: idempotent; signingKey false keeps the stored key', async (t) => {
  const key = async () => (await db.pool.query('SELECT inner_pad FROM keyhole.signing_key')).rows
  const before = await key()
  await db.pool.query(`GRANT TRUNCATE ON app.posts TO ${runtime.name}`)
  await db.pool.query(`GRANT ${migrator.name} TO ${runtime.name}`)
  const again = await setup(db.url, { ...options, signingKey: false })
  t.equal(again.signingKey, undefined)
  t.same(await key(), before)
  const { rows } = await db.pool.query(
    `SELECT has_table_privilege($1, 'app.posts', 'TRUNCATE') AS truncate,
       pg_has_role($1, $2, 'MEMBER') AS member`,
    [runtime.name, migrator.name],
  )
  t.same(
    rows,
    [{ truncate: false, member: false }],
    'setup repairs drifted privileges and memberships',
  )
  await setup(db.url, { ...options, signingKey: Buffer.alloc(32, 1) })
  t.not(await key(), before, 'a given key replaces the stored one')
})

t.test('policy SQL as a migration file', async (t) => {
  const path = await writePolicyMigration(dir, 2, policies, { runtimeRole: runtime.name })
  t.match(path, /000002\.do\.keyhole-policies\.sql$/)
  t.equal(await readFile(path, 'utf8'), policySql(policies, { runtimeRole: runtime.name }))
  t.match(policySql(policies, { runtimeRole: runtime.name, groupIdType: 'bigint' }), /::bigint\[\]/)
  await t.rejects(writePolicyMigration(dir, 2, policies, { runtimeRole: runtime.name }), {
    code: 'EEXIST',
  })
  await t.rejects(writePolicyMigration(dir, 0, policies, { runtimeRole: runtime.name }), {
    code: 'KH_INVALID_OPTIONS',
  })
  t.same(await migrate(migratorUrl, { migrationsDir: dir }), {
    keyhole: [],
    application: [2],
    policies: false,
    repairs: [],
  })
})

t.test('a broken policy migration is rolled back whole', async (t) => {
  const bad = definePolicies({ 'app.missing': { read: inGroup('group_id', 'member') } })
  await t.rejects(migrate(migratorUrl, { policies: bad, runtimeRole: runtime.name }), {
    code: '42P01',
  })
})

t.test('no password, verifier or key in the server log, with every statement logged', async (t) => {
  const server = await startLoggedPostgres(t)
  const root = new pg.Client({ connectionString: server.url })
  await root.connect()
  t.teardown(() => root.end())
  // A server that logs everything: every statement, with its bind parameters, for every session.
  await root.query(`ALTER DATABASE postgres SET log_statement = 'all';
                    ALTER DATABASE postgres SET log_min_duration_statement = 0`)
  const roles = {
    migrationRole: { name: 'logged_migrator', password: password() },
    runtimeRole: { name: 'logged_runtime', password: password() },
  }
  const signingKey = randomBytes(32)
  const verifiers = async () => {
    const { rows } = await root.query<{ verifier: string }>(
      'SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = ANY ($1)',
      [[roles.migrationRole.name, roles.runtimeRole.name]],
    )
    return rows.map((r) => r.verifier)
  }
  // Twice: CREATE ROLE the first time, ALTER ROLE (a new salt, so new verifiers) the second.
  await setup(server.url, { ...roles, signingKey })
  const created = await verifiers()
  await setup(server.url, { ...roles, signingKey })
  const altered = await verifiers()
  t.equal(new Set([...created, ...altered]).size, 4, 'four verifiers to look for')
  const marker = `log-marker-${randomBytes(8).toString('hex')}`
  // On a new session, as setup's are: the database's settings apply from its start.
  const after = new pg.Client({ connectionString: server.url })
  await after.connect()
  await after.query(`SELECT '${marker}' AS marker`)
  await after.end()
  await server.waitFor(marker)
  const log = server.log()
  t.match(log, `statement: SELECT '${marker}'`, 'the log is being read, with statements in it')
  t.match(log, 'statement: BEGIN', "setup's own statements are logged too")
  const { innerPad, outerPad } = hmacPads(signingKey)
  const secrets: [string, string][] = [
    ['migration password', roles.migrationRole.password],
    ['runtime password', roles.runtimeRole.password],
    ...[...created, ...altered].flatMap((verifier, i): [string, string][] => {
      // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>: either key is worth hiding.
      const [storedKey, serverKey] = verifier.split('$')[2]!.split(':')
      return [
        [`verifier ${i}`, verifier],
        [`StoredKey ${i}`, storedKey!],
        [`ServerKey ${i}`, serverKey!],
      ]
    }),
    ['signing key', signingKey.toString('base64url')],
    ['inner pad', innerPad.toString('hex')],
    ['outer pad', outerPad.toString('hex')],
  ]
  for (const [name, secret] of secrets) t.notOk(log.includes(secret), `no ${name} in the log`)
})
