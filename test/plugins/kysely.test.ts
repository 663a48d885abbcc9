/**
 * keyhole/kysely on a database prepared by keyhole's setup: in 'rls' mode any query Kysely builds
 * (no guard written: joins, aggregates, CTEs, writes) runs in the request's capability
 * transaction under the forced policies; a Kysely transaction is a savepoint of it; in 'guard'
 * mode only queries that embed `guarded()` of the request run.
 */
import pg from 'pg'
import t from 'tap'
import { CamelCasePlugin, sql, type Generated } from 'kysely'
import { guarded, kysely } from '../../plugins/kysely.ts'
import { createDatabaseRunner } from '../../src/db/database-runner.ts'
import { requestDatabases } from '../../src/http/request-database.ts'
import { adminOnly, inGroup } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { capability, createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'

interface DB {
  notes: { id: Generated<number>; group_id: string; owner: string; body: string }
}

const k = await createKeyholeDatabase(t)
const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
const bob = capability({ subject: 'bob', groups: { member: [k.groupB] } })
const root = capability({ subject: 'root', admin: true })
const rls = requestDatabases(
  createDatabaseRunner({
    pool: k.runtimePool(1),
    policies: notesPolicies,
    signingKey: k.signingKey,
    mode: 'rls',
    prepared: true,
  }),
  'test',
)

/** Runs `work` as one request of `who`: its transaction committed (or rolled back) at the end. */
async function request<T>(
  who: typeof alice,
  work: (db: ReturnType<typeof kysely<DB>>, handle: ReturnType<typeof rls.handle>) => Promise<T>,
  { ok = true, transaction = 'request' as 'request' | 'statement' } = {},
): Promise<T> {
  const key = {}
  const handle = rls.handle(key, who, transaction)
  let result: T
  try {
    result = await work(kysely<DB>(handle), handle)
  } catch (error) {
    // As the adapters do: an error answers an error status, which rolls back.
    await rls.end(key, false)
    throw error
  }
  await rls.end(key, ok)
  return result
}

async function bodies(where = 'true'): Promise<string[]> {
  const { rows } = await k.db.pool.query(`SELECT body FROM notes WHERE ${where} ORDER BY id`)
  return rows.map((r: { body: string }) => r.body)
}

t.test("'rls' mode: a query without a guard sees only the capability's rows", async (t) => {
  await request(alice, async (db) => {
    t.same(await db.selectFrom('notes').select('body').execute(), [{ body: 'a' }])
    const perGroup = await db
      .selectFrom('notes')
      .select(['group_id', (eb) => eb.fn.countAll<string>().as('n')])
      .groupBy('group_id')
      .execute()
    t.same(perGroup, [{ group_id: k.groupA, n: '1' }], 'an aggregate')
    const joined = await db
      .with('mine', (db) => db.selectFrom('notes').select(['id', 'group_id']))
      .selectFrom('notes as n')
      .innerJoin('mine as m', 'm.group_id', 'n.group_id')
      .select(['n.body', sql<string>`${'literal'}`.as('x')])
      .execute()
    t.same(joined, [{ body: 'a', x: 'literal' }], 'a CTE and a join')
    t.same(
      await db.selectFrom('notes').select('body').where('body', '=', "b' OR TRUE --").execute(),
      [],
      'values stay values',
    )
  })
  await request(root, async (db) => {
    t.same(
      (await db.selectFrom('notes').select('body').orderBy('id').execute()).slice(0, 2),
      [{ body: 'a' }, { body: 'b' }],
      'an admin sees every group',
    )
  })
})

t.test("'rls' mode: writes outside the capability are refused, nothing written", async (t) => {
  for (const transaction of ['request', 'statement'] as const) {
    await t.rejects(
      request(
        alice,
        (db) =>
          db
            .insertInto('notes')
            .values({ group_id: k.groupB, owner: 'alice', body: `kysely ${transaction} B` })
            .execute(),
        { transaction },
      ),
      { code: 'KH_NOT_FOUND' },
    )
    const inserted = await request(
      alice,
      (db) =>
        db
          .insertInto('notes')
          .values({ group_id: k.groupA, owner: 'alice', body: `kysely ${transaction} A` })
          .executeTakeFirstOrThrow(),
      { transaction },
    )
    t.equal(inserted.numInsertedOrUpdatedRows, 1n)
    const changed = await request(
      alice,
      (db) => db.updateTable('notes').set({ body: 'nope' }).execute(),
      { transaction },
    )
    t.same(
      changed.map((r) => r.numUpdatedRows),
      [0n],
      'a member may not update: no row passes the update policy',
    )
  }
  t.same(await bodies(`body LIKE 'kysely%'`), ['kysely request A', 'kysely statement A'])
})

t.test("a Kysely transaction is a savepoint of the request's transaction", async (t) => {
  await request(alice, async (db) => {
    await t.rejects(
      db.transaction().execute(async (trx) => {
        await trx
          .insertInto('notes')
          .values({ group_id: k.groupA, owner: 'alice', body: 'sp rolled back' })
          .execute()
        throw new Error('changed my mind')
      }),
      { message: 'changed my mind' },
    )
    // An error inside: the request transaction was aborted; the savepoint's rollback revives it.
    await t.rejects(
      db
        .transaction()
        .execute((trx) =>
          trx
            .insertInto('notes')
            .values({ group_id: k.groupB, owner: 'alice', body: 'sp B' })
            .execute(),
        ),
      { code: 'KH_NOT_FOUND' },
    )
    await db
      .transaction()
      .execute((trx) =>
        trx
          .insertInto('notes')
          .values({ group_id: k.groupA, owner: 'alice', body: 'sp kept' })
          .execute(),
      )
    // The connection is lent to one user at a time: this query waits for the transaction to end.
    let inside: Promise<unknown> | undefined
    await t.rejects(
      db.transaction().execute(async (trx) => {
        await trx
          .insertInto('notes')
          .values({ group_id: k.groupA, owner: 'alice', body: 'sp waits' })
          .execute()
        inside = db.selectFrom('notes').select('body').where('body', '=', 'sp waits').execute()
        await new Promise((resolve) => setTimeout(resolve, 20))
        throw new Error('roll back')
      }),
    )
    t.same(await inside, [], 'the outer query ran after the rollback, not inside the savepoint')
    const controlled = await db.startTransaction().execute()
    await controlled
      .insertInto('notes')
      .values({ group_id: k.groupA, owner: 'alice', body: 'sp controlled' })
      .execute()
    await controlled.commit().execute()
  })
  t.same(
    await bodies(`body LIKE 'sp%'`),
    ['sp kept', 'sp controlled'],
    'committed with the request',
  )
  await request(
    alice,
    async (db) => {
      await db
        .transaction()
        .execute((trx) =>
          trx
            .insertInto('notes')
            .values({ group_id: k.groupA, owner: 'alice', body: 'sp failed request' })
            .execute(),
        )
    },
    { ok: false },
  )
  t.same(await bodies(`body = 'sp failed request'`), [], 'a request that fails takes it along')

  await t.rejects(
    request(alice, (db) =>
      db
        .transaction()
        .setIsolationLevel('serializable')
        .execute(async () => {}),
    ),
    { code: 'KH_INVALID_OPTIONS', message: /isolation level/ },
  )
  await t.rejects(
    request(alice, (db) => db.transaction().execute(async () => {}), { transaction: 'statement' }),
    { code: 'KH_INVALID_OPTIONS', message: /savepoint/ },
  )
})

t.test('not a keyhole handle; streaming', async (t) => {
  for (const bad of [{}, null, { query() {} }]) {
    t.throws(() => kysely(bad as never), { code: 'KH_INVALID_OPTIONS' })
    t.throws(() => guarded(bad as never, 'notes', 'read'), { code: 'KH_INVALID_OPTIONS' })
  }
  await request(alice, async (db) => {
    const stream = db.selectFrom('notes').selectAll().stream()
    await t.rejects(stream.next(), { code: 'KH_INVALID_OPTIONS', message: /stream/ })
    const tables = await db.introspection.getTables()
    t.ok(
      tables.some((table) => table.name === 'notes'),
      'the introspector runs on the handle too',
    )
    await db.destroy()
  })
})

t.test("'guard' mode: only queries that embed guarded() of the request", async (t) => {
  // A superuser pool bypasses RLS: what is seen is the statement's guard alone.
  const pool = new pg.Pool({ connectionString: k.db.url, max: 1 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  const policies = definePolicies({
    notes: { read: inGroup('group_id', 'member'), delete: adminOnly() },
  })
  const guardMode = requestDatabases(
    createDatabaseRunner({ pool, policies, signingKey: undefined, mode: 'guard', prepared: true }),
    'test',
  )
  const as = (who: typeof alice) => guardMode.handle({}, who)
  const h = as(alice)
  const db = kysely<DB>(h)
  const before = await bodies()
  const refused: [string, () => Promise<unknown>][] = [
    ['no guard', () => db.selectFrom('notes').selectAll().execute()],
    [
      'an insert',
      () =>
        db
          .insertInto('notes')
          .values({ group_id: k.groupB, owner: 'x', body: 'guard mode' })
          .execute(),
    ],
    [
      "another request's guard",
      () =>
        db
          .selectFrom('notes')
          .selectAll()
          .where(guarded(as(bob), 'notes', 'read'))
          .execute(),
    ],
    [
      'both guards',
      () =>
        db
          .selectFrom('notes')
          .selectAll()
          .where(guarded(h, 'notes', 'read'))
          .where(guarded(as(bob), 'notes', 'read'))
          .execute(),
    ],
  ]
  for (const [name, run] of refused) await t.rejects(run(), { code: 'KH_UNGUARDED_SQL' }, name)
  await t.rejects(
    db.transaction().execute(async () => {}),
    { code: 'KH_INVALID_OPTIONS' },
  )
  // Queued behind a query: the connection is lent in turn, also to the refused.
  const [first, second] = await Promise.allSettled([
    db.selectFrom('notes').selectAll().execute(),
    db
      .selectFrom('notes')
      .select('body')
      .where(guarded(h, 'notes', 'read'))
      .execute(),
  ])
  t.match([first.status, second.status], ['rejected', 'fulfilled'])
  t.same(await bodies(), before, 'nothing written')

  const query = db
    .selectFrom('notes as n')
    .select('n.body')
    .where(guarded(h, 'notes', 'read', { alias: 'n' }))
  t.equal(
    query.compile().sql,
    'select "n"."body" from "notes" as "n" where "n"."group_id" = ANY ($1::uuid[])',
    "the guard's SQL, as guardedSelect writes it",
  )
  const viaKysely = (await query.orderBy('n.id').execute()).map((r) => r.body)
  const viaHandle = (await h.select<{ body: string }>('notes', {}, { orderBy: 'id' })).map(
    (r) => r.body,
  )
  t.same(viaKysely, viaHandle, 'the same rows as request.db.select')
  t.notOk(viaKysely.includes('b'))

  const camel = kysely<{ notes: { id: number; groupId: string; body: string } }>(h, {
    plugins: [new CamelCasePlugin()],
  })
  t.same(
    (
      await camel
        .selectFrom('notes')
        .select('groupId')
        .where(guarded(h, 'notes', 'read'))
        .execute()
    )
      .map((r) => r.groupId)
      .every((g) => g === k.groupA),
    true,
    'a plugin that rewrites the query keeps the guard',
  )
  const folded = (who: typeof alice) =>
    kysely<DB>(as(who))
      .selectFrom('notes')
      .select('body')
      .where(guarded(as(who), 'notes', 'delete'))
  t.match(folded(alice).compile().sql, /where \$1::boolean$/, 'a folded guard is a parameter')
  t.same(await folded(alice).execute(), [], 'adminOnly, not an admin: no row')
  t.ok((await folded(root).execute()).length >= 2, 'an admin: every row')
  t.throws(() => guarded(h, 'notes', 'read', { alias: 'n" OR TRUE --' }), {
    code: 'KH_INVALID_IDENTIFIER',
  })
  t.throws(() => guarded(h, 'notes', 'update'), { code: 'KH_NO_POLICY' })
})

t.test('kysely() per request costs a few objects', async (t) => {
  const handle = rls.handle({}, alice)
  const n = 20_000
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) kysely<DB>(handle)
  const micros = Number(process.hrtime.bigint() - start) / 1000 / n
  t.comment(`kysely(request.db): ${micros.toFixed(2)} µs per request`)
  t.ok(micros < 200, 'well under a round trip')
})

t.test('a query runs as a prepared statement named after its text, up to 200 texts', async (t) => {
  /** The prepared statements of the request's connection whose text is `text`. */
  const preparedAs = (db: ReturnType<typeof kysely<DB>>, text: string) =>
    sql<{ name: string }>`SELECT name FROM pg_prepared_statements WHERE statement = ${text}`
      .execute(db)
      .then((r) => r.rows.map((row) => row.name))
  const notes = (db: ReturnType<typeof kysely<DB>>) =>
    db.selectFrom('notes').select('body').where('owner', '=', 'nobody')
  const text = notes(kysely<DB>(rls.handle({}, alice))).compile().sql
  for (const transaction of ['request', 'statement'] as const) {
    await request(
      alice,
      async (db) => {
        t.same(await notes(db).execute(), [])
        const [name, ...others] = await preparedAs(db, text)
        t.match(name, /^keyhole_kysely_[0-9a-f]{32}$/, `${transaction}: named after its text`)
        t.same(others, [], `${transaction}: parsed once on the connection`)
      },
      { transaction },
    )
  }

  // The database option prepared: false (PgBouncer without max_prepared_statements): unnamed.
  const unprepared = requestDatabases(
    createDatabaseRunner({
      pool: k.runtimePool(1),
      policies: notesPolicies,
      signingKey: k.signingKey,
      mode: 'rls',
      prepared: false,
    }),
    'test',
  )
  const key = {}
  const db = kysely<DB>(unprepared.handle(key, alice))
  t.same(await notes(db).execute(), [])
  t.same(await preparedAs(db, text), [], 'prepared: false names nothing')
  await unprepared.end(key, true)

  // A text that varies from call to call must not fill every connection: past 200 texts, unnamed.
  await request(alice, async (db) => {
    for (let i = 0; i < 200; i++) {
      await db.selectFrom('notes').select(sql.lit(i).as('n')).where('owner', '=', 'x').execute()
    }
    const last = db.selectFrom('notes').select(sql.lit(-1).as('n')).where('owner', '=', 'x')
    await last.execute()
    await notes(db).execute()
    t.same(await preparedAs(db, last.compile().sql), [], 'the 201st text runs unnamed')
    t.equal((await preparedAs(db, text)).length, 1, 'a text named before still is')
  })
})
