/**
 * `setup` reports what it repaired: each start-up finding the database had before it ran and no
 * longer has, with its code and a line naming what changed (never a secret). What it creates the
 * first time is `created`, not a repair; a second run repairs nothing.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { checkDatabase } from '../../src/db/check-database.ts'
import { setup } from '../../src/db/setup.ts'
import { createTestDatabase } from '../helpers/database.ts'

const db = await createTestDatabase(t)
const password = () => randomBytes(18).toString('base64url')
const migrator = { name: `${db.prefix}_migrator`, password: password() }
const runtime = { name: `${db.prefix}_runtime`, password: password() }
const other = `${db.prefix}_other`
const options = { migrationRole: migrator, runtimeRole: runtime, schemas: ['app'] }

// Before the first subtest: the first run, then a table the migration role owns.
const first = await setup(db.url, options)
await db.pool.query(`
  CREATE TABLE app.posts (id serial PRIMARY KEY, title text NOT NULL);
  ALTER TABLE app.posts OWNER TO ${migrator.name};
  CREATE ROLE ${other} NOLOGIN;`)
const second = await setup(db.url, { ...options, signingKey: false })
const statementStats = await db.pool.query(
  `SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'`,
)

t.test('the first run creates the roles and the key: no repair of drift', async (t) => {
  t.same(first.created, [`role "${migrator.name}"`, `role "${runtime.name}"`, 'signing key'])
  // A new database gives PUBLIC TEMPORARY, a finding setup corrects on every new database.
  t.same(first.repairs, [
    {
      code: 'KH_DB_DATABASE_TEMP',
      message: `revoked TEMPORARY on database "${db.name}" from PUBLIC`,
    },
  ])
  t.same(
    Object.keys(first),
    ['repairs', 'created', 'capabilityStore'],
    'the key stays out of the enumerable result',
  )
})

t.test('a second run repairs and creates nothing', async (t) => {
  t.same(second.repairs, [])
  t.same(second.created, [])
})

t.test('each kind of drift is repaired and reported with its finding code', async (t) => {
  await db.pool.query(`
    ALTER ROLE ${runtime.name} SUPERUSER BYPASSRLS CREATEROLE CREATEDB REPLICATION;
    GRANT pg_read_all_data TO ${runtime.name};
    GRANT ${migrator.name} TO ${runtime.name};
    GRANT ${other} TO ${runtime.name};
    GRANT CREATE, TEMPORARY ON DATABASE ${db.name} TO ${runtime.name};
    GRANT CREATE ON SCHEMA public TO PUBLIC;
    GRANT CREATE ON SCHEMA app TO ${runtime.name};
    GRANT CREATE ON SCHEMA keyhole TO PUBLIC;
    GRANT TRUNCATE, TRIGGER ON app.posts TO ${runtime.name};
    GRANT SELECT ON app.posts TO ${runtime.name} WITH GRANT OPTION;
    GRANT SELECT ON keyhole.signing_key TO PUBLIC;
    DELETE FROM keyhole.signing_key;`)
  const { repairs, created } = await setup(db.url, options)
  t.same(created, [])
  const r = `the runtime role "${runtime.name}"`
  t.same(repairs, [
    { code: 'KH_DB_SUPERUSER', message: `removed SUPERUSER from ${r}` },
    { code: 'KH_DB_BYPASSRLS', message: `removed BYPASSRLS from ${r}` },
    { code: 'KH_DB_CREATEROLE', message: `removed CREATEROLE from ${r}` },
    { code: 'KH_DB_CREATEDB', message: `removed CREATEDB from ${r}` },
    { code: 'KH_DB_REPLICATION', message: `removed REPLICATION from ${r}` },
    ...[
      ['KH_DB_MEMBER_OF_OWNER', migrator.name],
      ['KH_DB_POWERFUL_MEMBERSHIP', 'pg_read_all_data'],
    ]
      .sort((a, b) => (a[1]! < b[1]! ? -1 : 1))
      .map(([code, role]) => ({
        code,
        message: `revoked ${r}'s membership in "${role}"`,
      })),
    { code: 'KH_DB_DATABASE_CREATE', message: `revoked CREATE on database "${db.name}" from ${r}` },
    {
      code: 'KH_DB_DATABASE_TEMP',
      message: `revoked TEMPORARY on database "${db.name}" from ${r}`,
    },
    { code: 'KH_DB_SCHEMA_CREATE', message: `revoked CREATE on schema "app" from ${r}` },
    { code: 'KH_DB_SCHEMA_CREATE', message: `revoked CREATE on schema "keyhole" from PUBLIC` },
    { code: 'KH_DB_SCHEMA_CREATE', message: `revoked CREATE on schema "public" from PUBLIC` },
    {
      code: 'KH_DB_TABLE_PRIVILEGE',
      message: `revoked TRIGGER, TRUNCATE on "app"."posts" from ${r}`,
    },
    { code: 'KH_DB_GRANT_OPTION', message: `revoked the grant option on "app"."posts" from ${r}` },
    {
      code: 'KH_DB_SIGNING_KEY_READABLE',
      message: `revoked SELECT on "keyhole"."signing_key" from ${r} or PUBLIC`,
    },
    {
      code: 'KH_DB_SIGNING_KEY_MISSING',
      message: 'stored the signing key (keyhole.signing_key was empty)',
    },
  ])
  for (const repair of repairs) {
    for (const secret of [runtime.password, migrator.password]) {
      t.notOk(repair.message.includes(secret), `${repair.code}: no password`)
    }
  }
  const again = await setup(db.url, { ...options, signingKey: false })
  t.same([again.repairs, again.created], [[], []], 'then nothing to repair')

  const client = await db.pool.connect()
  try {
    await client.query(`SET ROLE ${runtime.name}`)
    const findings = await checkDatabase(client, {
      guardedTables: [],
      migrationRole: migrator.name,
    })
    t.same(
      findings.map((f) => f.code),
      [],
      'and the start-up checks of the runtime role find nothing setup could repair',
    )
  } finally {
    await client.query('RESET ROLE')
    client.release()
  }
})

t.test(
  'a membership in a role with no power and owning nothing is revoked, no finding',
  async (t) => {
    await db.pool.query(`GRANT ${other} TO ${runtime.name}`)
    const { repairs } = await setup(db.url, { ...options, signingKey: false })
    t.same(repairs, [])
    const { rows } = await db.pool.query(
      `SELECT 1 FROM pg_auth_members WHERE member = $1::regrole`,
      [runtime.name],
    )
    t.equal(rows.length, 0)
  },
)

t.test(
  'pg_stat_statements readable by the runtime role is repaired',
  { skip: statementStats.rows.length === 0 && 'pg_stat_statements is not available' },
  async (t) => {
    await db.pool.query(`CREATE EXTENSION pg_stat_statements SCHEMA app`)
    t.teardown(() => db.pool.query('DROP EXTENSION IF EXISTS pg_stat_statements'))
    const { repairs } = await setup(db.url, { ...options, signingKey: false })
    t.same(repairs, [
      {
        code: 'KH_DB_STATEMENT_STATS_READABLE',
        message: `revoked "app".pg_stat_statements from PUBLIC and the runtime role "${runtime.name}"`,
      },
    ])
    const again = await setup(db.url, { ...options, signingKey: false })
    t.same(again.repairs, [])
  },
)
