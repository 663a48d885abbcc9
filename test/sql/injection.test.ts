import t from 'tap'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, member } from '../helpers/sql-forum.ts'

const forum = await createForum(t)
const { pool } = forum
const alice = makeCapability({ subject: "alice'; DROP TABLE posts; --", groups: { member: [G1] } })

const values = [
  "Robert'); DROP TABLE discussion_threads; --",
  '"; DROP TABLE posts; --',
  "' OR '1'='1",
  '$1 $2 \\x00 \\',
  'ünïcödé 🔑 ‮rtl‬ 漢字',
  '{"a":1}',
  '\u0001\u0002',
]

t.test('injection attempts in values are stored verbatim', async (t) => {
  for (const title of values) {
    const row = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title, created_by: alice.subject },
      guard: member,
    })
    t.equal(row.title, title)
    t.equal(row.created_by, alice.subject)
    const [read] = await guardedSelect(pool, alice, {
      from: 'discussion_threads',
      where: { title },
      guard: member,
    })
    t.equal(read?.title, title)
    const updated = await guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id: row.id as string },
      set: { title: title + '!' },
      guard: member,
    })
    t.equal(updated.rows[0]?.title, title + '!')
  }
  t.equal(
    (await forum.rows('SELECT count(*)::int AS n FROM discussion_threads'))[0]?.n,
    values.length,
  )
  t.equal(
    (await forum.rows(`SELECT to_regclass('posts') IS NOT NULL AS ok`))[0]?.ok,
    true,
    'posts still exists',
  )
})

t.test('NUL bytes are refused as a bad request (PostgreSQL text cannot hold them)', async (t) => {
  const title = 'a\u0000b'
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title, created_by: 'a' },
      guard: member,
    }),
    { code: 'KH_BAD_REQUEST', statusCode: 400 },
  )
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: [{ group_id: G1, title, created_by: 'a' }],
      guard: member,
    }),
    { code: 'KH_BAD_REQUEST' },
  )
  await t.rejects(
    guardedSelect(pool, alice, { from: 'discussion_threads', where: { title }, guard: member }),
    { code: 'KH_BAD_REQUEST' },
  )
})

t.test('injection attempts in identifiers are refused before any SQL runs', async (t) => {
  const q = { query: () => t.fail('no query') } as never
  for (const key of ['title; DROP TABLE posts', 'title"', 'a b']) {
    await t.rejects(
      guardedInsert(q, alice, {
        into: 'discussion_threads',
        values: { [key]: 'x' },
        guard: member,
      }),
      { code: 'KH_INVALID_IDENTIFIER' },
    )
    await t.rejects(
      guardedSelect(q, alice, { from: 'discussion_threads', where: { [key]: 'x' }, guard: member }),
      { code: 'KH_INVALID_IDENTIFIER' },
    )
    await t.rejects(
      guardedUpdate(q, alice, {
        table: 'discussion_threads',
        where: {},
        set: { [key]: 'x' },
        guard: member,
      }),
      { code: 'KH_INVALID_IDENTIFIER' },
    )
    await t.rejects(guardedSelect(q, alice, { from: key, guard: member }), {
      code: 'KH_INVALID_IDENTIFIER',
    })
    await t.rejects(guardedSelect(q, alice, { from: 'posts', columns: [key], guard: member }), {
      code: 'KH_INVALID_IDENTIFIER',
    })
    await t.rejects(guardedSelect(q, alice, { from: 'posts', orderBy: key, guard: member }), {
      code: 'KH_INVALID_IDENTIFIER',
    })
    await t.rejects(
      guardedInsert(q, alice, { into: 'posts', values: { a: 1 }, returning: [key], guard: member }),
      { code: 'KH_INVALID_IDENTIFIER' },
    )
  }
})

t.test('malformed rows are a bad request', async (t) => {
  const q = { query: () => t.fail('no query') } as never
  for (const rows of [
    {},
    [{ a: 1 }, { b: 1 }],
    [{ a: 1 }, null],
    [{ a: 1 }, [1]],
    [null],
    [{ a: 1 }, { a: 1, b: 2 }],
  ]) {
    await t.rejects(
      guardedInsert(q, alice, { into: 'posts', values: rows as never, guard: member }),
      { code: 'KH_BAD_REQUEST' },
      JSON.stringify(rows),
    )
  }
  await t.rejects(guardedInsert(q, alice, { into: 'posts', values: { a: 1 } } as never), {
    code: 'KH_INVALID_OPTIONS',
  })
  await t.rejects(
    guardedInsert(q, alice, {
      into: 'posts',
      values: { a: 1 },
      returning: 'a' as never,
      guard: member,
    }),
    { code: 'KH_INVALID_OPTIONS' },
  )
})

t.test('a duplicate key (of a key the statement may choose) is a 409 without DETAIL', async (t) => {
  await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values: { group_id: G1, title: 's', created_by: 'a', slug: 'secret-slug' },
    guard: member,
    chosenKeys: ['slug'],
  })
  const e = await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values: { group_id: G1, title: 's', created_by: 'a', slug: 'secret-slug' },
    guard: member,
    chosenKeys: ['slug'],
  }).then(
    () => undefined,
    (e: unknown) => e as Error,
  )
  t.match(e, { code: 'KH_CONFLICT', statusCode: 409 })
  t.notMatch(JSON.stringify(e) + String(e?.message), /secret-slug|Key|DETAIL/i)
  t.same(JSON.parse(JSON.stringify(e)), {
    statusCode: 409,
    error: 'Conflict',
    message: 'Conflict with an existing row',
    code: 'KH_CONFLICT',
  })
})
