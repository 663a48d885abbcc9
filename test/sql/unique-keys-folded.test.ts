/**
 * In 'rls' mode a guarded write's unique-key test is `keyhole.sets_unique_key(…)`
 * (sql/000005.do.keyhole-unique-keys.sql): PostgreSQL answers it while planning, so the cached plan
 * of a named statement carries the answer instead of reading the catalogue on every execution.
 * That answer must never be older than the table's definition: a unique index or constraint made
 * or dropped in another session is seen by the very next execution on a connection whose plan was
 * cached before it.
 */
import t from 'tap'
import pg from 'pg'
import { migrate } from '../../src/db/migrate.ts'
import { createSessionFactory } from '../../src/db/session.ts'
import { quoteTable } from '../../src/sql/identifier.ts'
import { bindPolicies } from '../../src/sql/policies.ts'
import { setsUniqueKeySql } from '../../src/sql/unique-keys.ts'
import type { QueryConfig, Queryable } from '../../src/sql/queryable.ts'
import { capability, createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'

t.test(
  'sets_unique_key: one call in the write, no catalogue read in its generic plan',
  async (t) => {
    const k = await createKeyholeDatabase(t)
    const sessions = createSessionFactory({ pool: k.runtimePool(1), signingKey: k.signingKey })
    const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
    const texts: string[] = []
    await sessions.withCapability(alice, (db) => {
      const recording: Queryable = {
        query: (config: QueryConfig) => (texts.push(config.text), db.query(config)),
      }
      return bindPolicies(notesPolicies, recording, alice, { mode: 'rls' }).insert('notes', {
        group_id: k.groupA,
        owner: 'alice',
        body: 'b',
      })
    })
    t.equal(texts.length, 1)
    const text = texts[0]!
    t.match(
      text,
      `AND NOT keyhole.sets_unique_key('"notes"'::regclass, '{"group_id","owner","body"}'::name[])`,
    )
    t.notMatch(text, 'pg_index', 'the catalogue is read only inside the function')
    const client = new pg.Client({ connectionString: k.db.url })
    await client.connect()
    t.teardown(() => client.end())
    const plan = async (statement: string) => {
      await client.query('DEALLOCATE ALL')
      await client.query(`SET plan_cache_mode = force_generic_plan`)
      await client.query(`PREPARE w (uuid, text, text, uuid[], text) AS ${statement}`)
      const { rows } = await client.query(
        `EXPLAIN (VERBOSE, COSTS OFF) EXECUTE w ('${k.groupA}', 'alice', 'b', '{}', 'alice')`,
      )
      return rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n')
    }
    const folded = await plan(text)
    t.notMatch(folded, /pg_index|sets_unique_key|InitPlan/, 'folded into the plan: no scan left')
    const inline = await plan(
      text.replace(/keyhole\.sets_unique_key\([^)]*\)/, 'EXISTS (SELECT FROM pg_catalog.pg_index)'),
    )
    t.match(inline, 'pg_index', 'a catalogue sub-select stays in the plan (the test can fail)')
  },
)

t.test('never staler than the table: DDL in another session reaches a cached plan', async (t) => {
  const k = await createKeyholeDatabase(t)
  // One connection: every write below reuses its named statements and their cached plans.
  const sessions = createSessionFactory({ pool: k.runtimePool(1), signingKey: k.signingKey })
  const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
  const molly = capability({ subject: 'molly', groups: { moderator: [k.groupA] } })
  const migrator = new pg.Client({ connectionString: k.migratorUrl })
  await migrator.connect()
  t.teardown(() => migrator.end())
  const count = async () =>
    (await k.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM notes')).rows[0]!.n
  let n = 0
  const insert = () =>
    sessions.withCapability(alice, (db) =>
      bindPolicies(notesPolicies, db, alice, { mode: 'rls' }).insert('notes', {
        group_id: k.groupA,
        owner: 'alice',
        body: `note ${++n}`,
      }),
    )
  const [mine] = (await k.db.pool.query('SELECT id FROM notes WHERE owner = $1', ['alice'])).rows
  const update = () =>
    sessions.withCapability(molly, (db) =>
      bindPolicies(notesPolicies, db, molly, { mode: 'rls' }).update(
        'notes',
        { id: mine.id },
        { body: `edit ${++n}` },
      ),
    )
  const outcome = (write: Promise<unknown>) =>
    write.then(
      () => 'written',
      (error: { code?: string }) => error.code,
    )
  const generic = () =>
    sessions.withCapability(alice, async (db) => {
      const { rows } = await db.query<{ n: number }>(
        `SELECT sum(generic_plans)::int AS n FROM pg_prepared_statements
         WHERE statement LIKE '%keyhole.sets_unique_key%'`,
      )
      return rows[0]!.n
    })

  for (let i = 0; i < 8; i++) {
    await insert()
    await update()
  }
  t.ok((await generic()) >= 4, 'both writes run their cached generic plans')

  const cases = [
    ['CREATE UNIQUE INDEX notes_body ON notes (lower(body))', 'DROP INDEX notes_body'],
    [
      'ALTER TABLE notes ADD CONSTRAINT notes_owner_body UNIQUE (owner, body)',
      'ALTER TABLE notes DROP CONSTRAINT notes_owner_body',
    ],
  ] as const
  for (const [make, drop] of cases) {
    await migrator.query(make)
    const before = await count()
    t.equal(await outcome(insert()), 'KH_BAD_REQUEST', `${make}: the next INSERT is refused`)
    t.equal(await outcome(update()), 'KH_BAD_REQUEST', `${make}: the next UPDATE is refused`)
    t.equal(await count(), before, 'nothing written')
    await migrator.query(drop)
    t.equal(await outcome(insert()), 'written', `${drop}: written again`)
    t.equal(await outcome(update()), 'written', `${drop}: changed again`)
  }
})

t.test(
  'a database set up before 000005 gets it through migrate, with EXECUTE for the runtime role',
  async (t) => {
    const k = await createKeyholeDatabase(t)
    const migrator = new pg.Client({ connectionString: k.migratorUrl })
    await migrator.connect()
    t.teardown(() => migrator.end())
    await migrator.query('DROP FUNCTION keyhole.sets_unique_key(regclass, name[])')
    await migrator.query('DELETE FROM keyhole.schemaversion WHERE version = 5')
    t.same((await migrate(k.migratorUrl)).keyhole, [5], 'migrate applies 000005')
    const { rows } = await k.db.pool.query(
      `SELECT has_function_privilege($1, 'keyhole.sets_unique_key(regclass, name[])', 'EXECUTE') AS runtime,
       has_function_privilege('public', 'keyhole.sets_unique_key(regclass, name[])', 'EXECUTE') AS public`,
      [k.runtime.name],
    )
    t.same(rows, [{ runtime: true, public: false }], 'granted as set_capability is, not to PUBLIC')
  },
)

t.test('the function and the sub-select give the same answer for every kind of key', async (t) => {
  // Two copies of one test (sql/000005 for 'rls' mode, unique-keys.ts for 'guard' mode): they
  // must not drift apart.
  const k = await createKeyholeDatabase(t)
  await k.db.pool.query(`CREATE TABLE tags (
    id uuid PRIMARY KEY, slug text UNIQUE, name text, kind text, group_id uuid, code int,
    body text, "null" text UNIQUE,
    EXCLUDE USING btree (code WITH =));
    CREATE UNIQUE INDEX tags_lower_name ON tags (lower(name));
    CREATE UNIQUE INDEX tags_pinned ON tags (group_id) WHERE kind = 'pinned'`)
  const cases: [string[], boolean][] = [
    [['id'], true],
    [['slug'], true],
    [['name'], true],
    [['kind'], true],
    [['group_id'], true],
    [['code'], true],
    [['null'], true],
    [['body'], false],
    [['body', 'slug'], true],
  ]
  const table = quoteTable('tags')
  for (const [columns, expected] of cases) {
    const inline = setsUniqueKeySql(table, columns, {})!
    const folded = setsUniqueKeySql(table, columns, { keyholeSchema: true })!
    const { rows } = await k.db.pool.query(`SELECT ${inline} AS inline, ${folded} AS folded`)
    t.same(rows, [{ inline: expected, folded: expected }], columns.join(', '))
  }
  t.equal(
    setsUniqueKeySql(table, ['slug'], { chosenKeys: ['slug'], keyholeSchema: true }),
    undefined,
  )
})
