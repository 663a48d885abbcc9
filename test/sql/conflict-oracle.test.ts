/**
 * No existence oracle through unique keys. PostgreSQL checks a unique key across every row, past
 * row-level security, so a caller that picks the value of a unique column learns whether a row it
 * cannot see holds it: before, 409 KH_CONFLICT for a hidden row's key and success for an unused
 * one. Now a guarded write that sets a unique column is refused whatever the value (400
 * KH_BAD_REQUEST, the same answer for a hidden row's key and an unused one, nothing written),
 * unless the statement names the column in `chosenKeys` — in 'guard' mode (the guard in the
 * statement, the test a catalogue sub-select) and in 'rls' mode (the runtime role under forced
 * policies, through a session; the test keyhole.sets_unique_key, see unique-keys-folded.test.ts).
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { createSessionFactory } from '../../src/db/session.ts'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import { inGroup } from '../../src/sql/guard.ts'
import { bindPolicies } from '../../src/sql/policies.ts'
import { capability, createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, G3, member } from '../helpers/sql-forum.ts'

/** What a write answered: `ok`, or the error's status, code and message. */
async function outcome(write: Promise<unknown>) {
  try {
    await write
    return { ok: true }
  } catch (error) {
    const { statusCode, code, message } = error as Record<string, unknown>
    return { statusCode, code, message }
  }
}

/** The hidden row's key and an unused one must get the same refusal, and write nothing. */
async function sameRefusal(
  t: Test,
  count: () => Promise<number>,
  hidden: () => Promise<unknown>,
  unused: () => Promise<unknown>,
) {
  const before = await count()
  const a = await outcome(hidden())
  const b = await outcome(unused())
  t.match(a, { statusCode: 400, code: 'KH_BAD_REQUEST' }, "a hidden row's key: 400")
  t.same(b, a, 'an unused key: the very same answer')
  t.equal(await count(), before, 'nothing written')
}

t.test("'guard' mode: the guard in the statement", async (t) => {
  const forum = await createForum(t)
  const { pool } = forum
  await pool.query(`
    CREATE TABLE tags (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), group_id uuid NOT NULL,
      name text NOT NULL, kind text NOT NULL DEFAULT 'tag', archived boolean NOT NULL DEFAULT false);
    CREATE UNIQUE INDEX tags_lower_name ON tags (lower(name));
    CREATE UNIQUE INDEX tags_live_kind ON tags (group_id) WHERE NOT archived AND kind = 'pinned'`)
  const alice = makeCapability({ subject: 'alice', groups: { member: [G1] } })
  const hidden = await forum.thread(G3, 'hidden')
  await pool.query(`UPDATE discussion_threads SET slug = 'acme-merger' WHERE id = $1`, [hidden])
  const threads = async () => (await forum.rows('SELECT 1 FROM discussion_threads')).length
  const insert = (values: Record<string, unknown>) =>
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'mine', created_by: 'alice', ...values },
      guard: member,
      readGuard: member,
    })

  t.test('INSERT choosing the primary key', async (t) => {
    await sameRefusal(
      t,
      threads,
      () => insert({ id: hidden }),
      () => insert({ id: randomUUID() }),
    )
  })

  t.test('INSERT choosing another unique column (a slug)', async (t) => {
    await sameRefusal(
      t,
      threads,
      () => insert({ slug: 'acme-merger' }),
      () => insert({ slug: 'unused-slug' }),
    )
  })

  t.test('INSERT of several rows, one choosing a key', async (t) => {
    const rows = (slug: string) => [
      { group_id: G1, title: 'a', created_by: 'alice', slug: null },
      { group_id: G1, title: 'b', created_by: 'alice', slug },
    ]
    const several = (slug: string) =>
      guardedInsert(pool, alice, { into: 'discussion_threads', values: rows(slug), guard: member })
    await sameRefusal(
      t,
      threads,
      () => several('acme-merger'),
      () => several('unused-slug'),
    )
    const none = () =>
      guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values: rows('x'),
        guard: member,
        returning: [],
      })
    t.match(await outcome(none()), { code: 'KH_BAD_REQUEST' }, 'returning nothing: the same')
  })

  t.test('UPDATE setting a unique column', async (t) => {
    const mine = await forum.thread(G1, 'mine')
    const update = (slug: string) =>
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id: mine },
        set: { slug },
        guard: member,
        readGuard: member,
      })
    await sameRefusal(
      t,
      threads,
      () => update('acme-merger'),
      () => update('unused-slug'),
    )
    const [row] = await forum.rows<{ slug: string | null }>(
      'SELECT slug FROM discussion_threads WHERE id = $1',
      [mine],
    )
    t.equal(row?.slug, null, 'the thread kept its slug')
    t.match(
      await outcome(
        guardedUpdate(pool, alice, {
          table: 'discussion_threads',
          where: { id: randomUUID() },
          set: { slug: 'x' },
          guard: member,
        }),
      ),
      { code: 'KH_BAD_REQUEST' },
      'even when no row matches: the refusal does not depend on the rows',
    )
  })

  t.test('a column read by a unique expression or a partial index is a key too', async (t) => {
    const tags = async () => (await forum.rows('SELECT 1 FROM tags')).length
    const tag = (values: Record<string, unknown>) =>
      guardedInsert(pool, alice, {
        into: 'tags',
        values: { group_id: G1, ...values },
        guard: inGroup('group_id', 'member'),
      })
    await pool.query(`INSERT INTO tags (group_id, name) VALUES ($1, 'Secret')`, [G3])
    await sameRefusal(
      t,
      tags,
      () => tag({ name: 'secret' }),
      () => tag({ name: 'unused' }),
    )
    const pinned = () => tag({ name: 'p', kind: 'pinned' })
    t.match(await outcome(pinned()), { code: 'KH_BAD_REQUEST' }, 'a predicate column (kind)')
    t.match(
      await outcome(
        guardedInsert(pool, alice, {
          into: 'tags',
          values: { group_id: G1, name: 'free', kind: 'pinned' },
          guard: inGroup('group_id', 'member'),
          chosenKeys: ['group_id', 'name', 'kind'],
        }),
      ),
      { ok: true },
      'named in chosenKeys (group_id too: a key column of the partial index): written',
    )
  })

  t.test('chosenKeys: the statement accepts the oracle for those columns', async (t) => {
    const chosen = (slug: string) =>
      guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values: { group_id: G1, title: 'mine', created_by: 'alice', slug },
        guard: member,
        chosenKeys: ['slug'],
      })
    t.match(await outcome(chosen('acme-merger')), { statusCode: 409, code: 'KH_CONFLICT' })
    t.same(await outcome(chosen('free-slug')), { ok: true })
    const id = randomUUID()
    const withId = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { id, group_id: G1, title: 'server-made id', created_by: 'alice' },
      guard: member,
      chosenKeys: ['id'],
    })
    t.equal(withId.id, id, 'an id the server generated, named in chosenKeys')
  })

  t.test('a write that sets no unique column is unchanged', async (t) => {
    t.same(await outcome(insert({})), { ok: true })
    const quiet = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'quiet', created_by: 'alice' },
      guard: member,
      returning: [],
    })
    t.same(quiet, {}, 'one row returning nothing')
    const refused = await outcome(
      guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values: { group_id: G3, title: 'x', created_by: 'alice' },
        guard: member,
      }),
    )
    t.match(refused, { statusCode: 404, code: 'KH_CAPABILITY_DENIED' }, 'a refused row: 404')
  })

  t.test('every column named in chosenKeys: no catalogue test in the statement', async (t) => {
    const texts: string[] = []
    const spy = {
      query: (config: { text: string }) => {
        texts.push(config.text)
        return pool.query(config as never)
      },
    }
    const all = ['group_id', 'title', 'created_by']
    const admin = makeCapability({ subject: 'root', admin: true })
    await guardedInsert(spy, admin, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'a', created_by: 'root' },
      guard: member,
      chosenKeys: all,
    })
    await guardedInsert(spy, alice, {
      into: 'discussion_threads',
      values: [{ group_id: G1, title: 'b', created_by: 'alice' }],
      guard: member,
      chosenKeys: all,
    })
    const refused = guardedInsert(spy, alice, {
      into: 'discussion_threads',
      values: { group_id: G3, title: 'c', created_by: 'alice' },
      guard: member,
      readGuard: member,
      chosenKeys: all,
    })
    await t.rejects(refused, { code: 'KH_CAPABILITY_DENIED' })
    const mine = await forum.thread(G1, 'mine')
    await guardedUpdate(spy, alice, {
      table: 'discussion_threads',
      where: { id: mine },
      set: { title: 'renamed' },
      guard: member,
      chosenKeys: ['title'],
    })
    t.equal(texts.length, 5, 'four writes and one refusal check')
    t.notOk(
      texts.some((text) => text.includes('pg_index')),
      'none reads the catalogue',
    )
    texts.length = 0
    await guardedInsert(spy, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'd', created_by: 'alice' },
      guard: member,
    })
    t.match(texts, [/AND NOT EXISTS \(SELECT FROM pg_catalog\.pg_index/], 'otherwise one filter')
  })

  t.test('chosenKeys must be a list of column names', async (t) => {
    for (const chosenKeys of ['slug', [1], ['a;b'], null]) {
      await t.rejects(
        guardedInsert(pool, alice, {
          into: 'discussion_threads',
          values: { group_id: G1, title: 'x', created_by: 'alice' },
          guard: member,
          chosenKeys: chosenKeys as never,
        }),
        { code: 'KH_INVALID_OPTIONS' },
        JSON.stringify(chosenKeys),
      )
    }
  })
})

t.test("'rls' mode: the runtime role under the forced policies, through a session", async (t) => {
  const k = await createKeyholeDatabase(t)
  const sessions = createSessionFactory({ pool: k.runtimePool(), signingKey: k.signingKey })
  const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
  const [hidden] = await k.db.pool
    .query<{ id: number }>('SELECT id FROM notes WHERE group_id = $1', [k.groupB])
    .then((r) => r.rows)
  const notes = async () =>
    (await k.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM notes')).rows[0]!.n
  const insert = (id: number) =>
    sessions.withCapability(alice, (db) =>
      bindPolicies(notesPolicies, db, alice, { mode: 'rls' }).insert('notes', {
        id,
        group_id: k.groupA,
        owner: 'alice',
        body: 'mine',
      }),
    )
  await sameRefusal(
    t,
    notes,
    () => insert(hidden!.id),
    () => insert(1_000_000),
  )
  const moderator = capability({ subject: 'molly', groups: { moderator: [k.groupA] } })
  const update = (id: number) =>
    sessions.withCapability(moderator, (db) =>
      bindPolicies(notesPolicies, db, moderator, { mode: 'rls' }).update(
        'notes',
        { group_id: k.groupA },
        { id },
        { returning: [] },
      ),
    )
  await sameRefusal(
    t,
    notes,
    () => update(hidden!.id),
    () => update(1_000_001),
  )
  const chosen = (id: number) =>
    sessions.withCapability(alice, (db) =>
      bindPolicies(notesPolicies, db, alice, { mode: 'rls' }).insert(
        'notes',
        { id, group_id: k.groupA, owner: 'alice', body: 'mine' },
        { chosenKeys: ['id'] },
      ),
    )
  t.match(await outcome(chosen(hidden!.id)), { statusCode: 409, code: 'KH_CONFLICT' })
  t.same(await outcome(chosen(1_000_002)), { ok: true }, 'chosenKeys through the policy handle')
})
