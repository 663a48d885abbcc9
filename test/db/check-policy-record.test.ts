/**
 * The policy record (policy-record.ts) end to end with keyhole's real setup: the migration role
 * applies the recorded policy SQL, and the runtime role's checks find its policies exactly as the
 * application defines them, whatever the session's search_path.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { checkDatabase, type CheckDatabaseOptions } from '../../src/db/check-database.ts'
import { expectedPolicies, parseRecord } from '../../src/db/checks/policy-record.ts'
import { KEYHOLE_FUNCTIONS } from '../../src/db/keyhole-sql.ts'
import { migrate } from '../../src/db/migrate.ts'
import { applyPolicies, renderRecordedPolicySql } from '../../src/db/policy-sql.ts'
import { setup } from '../../src/db/setup.ts'
import { and, inGroup, isSubject, viaParent } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { renderPolicySql } from '../../src/sql/render-policy-sql.ts'
import { createTestDatabase } from '../helpers/database.ts'

const member = inGroup('group_id', 'member')
const thread = { table: 'threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' }
const policies = definePolicies({
  threads: { read: member, insert: member, delete: inGroup('group_id', 'moderator') },
  'app.posts': {
    read: viaParent(thread, 'member'),
    update: and(isSubject('created_by'), viaParent(thread, 'member')),
  },
})

t.test('the expected policies: one per table and declared operation', async (t) => {
  const expected = expectedPolicies(policies, { role: 'app_runtime', groupIdType: 'bigint' })
  t.same(
    expected.map((p) => [p.table, p.name]),
    [
      ['"threads"', 'keyhole_select'],
      ['"threads"', 'keyhole_insert'],
      ['"threads"', 'keyhole_delete'],
      ['"app"."posts"', 'keyhole_select'],
      ['"app"."posts"', 'keyhole_update'],
    ],
  )
  for (const p of expected) {
    // The posts policies only look the thread up: the threads' SELECT policy says the rest.
    t.match(
      p.statement,
      /^CREATE POLICY keyhole_[a-z]+ ON .* TO "app_runtime" .*(::bigint\[\]|FROM "threads" AS "p1" WHERE "p1"\."id" = "posts"\."thread_id"\))/,
    )
    t.notMatch(p.statement, /;$/)
    t.match(p.statementSha256, /^[0-9a-f]{64}$/)
  }
  t.not(
    expectedPolicies(policies, { role: 'other_runtime', groupIdType: 'bigint' })[0]!
      .statementSha256,
    expected[0]!.statementSha256,
    'another role, another statement',
  )
  t.throws(() => expectedPolicies(policies, { role: 'a"b', groupIdType: 'uuid' }), {
    code: 'KH_INVALID_IDENTIFIER',
  })
})

t.test('no policies: nothing to create or record', async (t) => {
  const sql = renderRecordedPolicySql(definePolicies({}), { role: 'rt', groupIdType: 'uuid' })
  t.notMatch(sql, /CREATE POLICY|DO \$keyhole\$/)
})

t.test('a record is exactly keyhole-policy v1 and two digests', async (t) => {
  const a = 'a'.repeat(64)
  const b = 'b'.repeat(64)
  t.same(parseRecord(`keyhole-policy v1 statement:${a} definition:${b}`), {
    statement: a,
    definition: b,
  })
  for (const bad of [
    null,
    '',
    'a comment of the application',
    `keyhole-policy v2 statement:${a} definition:${b}`,
    `keyhole-policy v1 statement:${a} definition:${b} `,
    `keyhole-policy v1 statement:${a.slice(1)} definition:${b}`,
  ]) {
    t.equal(parseRecord(bad), undefined, String(bad))
  }
})

t.test('applied by the migration role after setup and migrate: exactly as defined', async (t) => {
  const db = await createTestDatabase(t)
  const password = () => randomBytes(18).toString('base64url')
  const migrator = { name: `${db.prefix}_migrator`, password: password() }
  const runtime = { name: `${db.prefix}_runtime`, password: password() }
  await setup(db.url, { migrationRole: migrator, runtimeRole: runtime, schemas: ['public', 'app'] })
  const dir = await mkdtemp(join(tmpdir(), 'keyhole-record-'))
  await writeFile(
    join(dir, '000001.do.tables.sql'),
    `CREATE TABLE public.threads (id serial PRIMARY KEY, group_id uuid NOT NULL);
     CREATE TABLE app.posts (id serial PRIMARY KEY, thread_id int NOT NULL REFERENCES threads,
       created_by text NOT NULL);`,
  )
  const migratorUrl = db.urlAs(migrator.name, migrator.password)
  await migrate(migratorUrl, { migrationsDir: dir })
  const asMigrator = new pg.Client({ connectionString: migratorUrl })
  await asMigrator.connect()
  t.teardown(() => asMigrator.end())
  const apply = async (sql: string) => {
    await asMigrator.query('BEGIN')
    await asMigrator.query(sql)
    await asMigrator.query('COMMIT')
  }
  await apply(renderRecordedPolicySql(policies, { role: runtime.name, groupIdType: 'uuid' }))

  const options: CheckDatabaseOptions = {
    guardedTables: [
      { table: 'public.threads', operations: ['select', 'insert', 'delete'] },
      { table: 'app.posts', operations: ['select', 'update'] },
    ],
    migrationRole: migrator.name,
    applicationSchemas: ['public', 'app'],
    keyholeFunctions: [...KEYHOLE_FUNCTIONS],
    policies,
  }
  const check = async (searchPath?: string, changed: Partial<CheckDatabaseOptions> = {}) => {
    const c = new pg.Client({ connectionString: db.urlAs(runtime.name, runtime.password) })
    await c.connect()
    try {
      if (searchPath) await c.query(`SET search_path = ${searchPath}`)
      return (await checkDatabase(c, { ...options, ...changed })).map((f) => f.code)
    } finally {
      await c.end()
    }
  }
  t.same(await check(), [], 'no finding')
  t.same(await check('keyhole, app, public'), [], 'another search_path: the same trees')
  t.same(
    await check('public'),
    [],
    'app.posts out of the search_path: still the same (the tables are named as declared)',
  )

  // Applied without the record (the bare policy SQL): nothing proves what they are.
  await apply(renderPolicySql(policies, { role: runtime.name, groupIdType: 'uuid' }))
  t.same(await check(), Array(5).fill('KH_DB_POLICY_NOT_APPLIED'), 'no records')
  // keyhole's own way to apply them (and `keyhole migrate`, and policy migrations) records them.
  await applyPolicies(asMigrator, policies, { runtimeRole: runtime.name })
  t.same(await check(), [], 'recorded again by applyPolicies')
  t.same(
    await check(undefined, { groupIdType: 'bigint' }),
    // The posts policies only look the thread up: they name no group-ID type.
    Array(3).fill('KH_DB_POLICY_NOT_APPLIED'),
    'checked for another group-ID type: the threads policies were not applied so',
  )
})
