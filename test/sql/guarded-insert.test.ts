import t from 'tap'
import pg from 'pg'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { adminOnly, and, inGroup, isSubject } from '../../src/sql/guard.ts'
import { MAX_VALUES } from '../../src/sql/typed-values.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import {
  commentMember,
  createForum,
  G1,
  G2,
  G3,
  member,
  moderator,
  postMember,
} from '../helpers/sql-forum.ts'

const forum = await createForum(t)
const { pool } = forum
const alice = makeCapability({ subject: 'alice', groups: { member: [G1], moderator: [G2] } })
const outsider = makeCapability({ subject: 'eve', groups: { member: [G3] } })
const admin = makeCapability({ subject: 'root', admin: true })

const titles = async () =>
  (await forum.rows<{ title: string }>('SELECT title FROM discussion_threads ORDER BY title')).map(
    (r) => r.title,
  )

t.beforeEach(async () => {
  await pool.query('TRUNCATE discussion_threads CASCADE')
})

t.test('one row the guard allows is inserted and returned, typed by the table', async (t) => {
  const row = await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values: { group_id: G1, title: 'hello', created_by: 'alice' },
    guard: member,
  })
  t.match(row, { group_id: G1, title: 'hello', created_by: 'alice', id: /^[0-9a-f-]{36}$/ })
  t.type(row.created_at, Date, 'defaults fill the columns left out')
  t.same(await titles(), ['hello'])
})

t.test(
  'a higher role does what a lower one may: a moderator of G2 is a member of G2',
  async (t) => {
    await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G2, title: 'as moderator', created_by: 'alice' },
      guard: member,
      returning: ['id'],
    })
    t.same(await titles(), ['as moderator'])
  },
)

t.test('one row the guard refuses throws CapabilityDenied and writes nothing', async (t) => {
  const denied = await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values: { group_id: G3, title: 'nope', created_by: 'alice' },
    guard: member,
    readGuard: member,
  }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.match(denied, {
    code: 'KH_CAPABILITY_DENIED',
    table: 'discussion_threads',
    operation: 'insert',
    visible: false,
    statusCode: 404,
  })
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'nope', created_by: 'alice' },
      guard: moderator,
      readGuard: member,
    }),
    { code: 'KH_CAPABILITY_DENIED', visible: true, statusCode: 403 },
    'readable but not writable: 403',
  )
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'nope', created_by: 'alice' },
      guard: moderator,
    }),
    { code: 'KH_CAPABILITY_DENIED', visible: false, statusCode: 404 },
    'without a read guard a refusal answers 404',
  )
  t.same(await titles(), [])
})

t.test(
  'several rows across groups: exactly the allowed rows are inserted, the refused reported',
  async (t) => {
    const values = [
      { group_id: G1, title: 'a', created_by: 'alice' },
      { group_id: G3, title: 'b', created_by: 'alice' },
      { group_id: G2, title: 'c', created_by: 'alice' },
      { group_id: G3, title: 'd', created_by: 'alice' },
    ]
    const result = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values,
      guard: member,
    })
    t.same(result.refused, [1, 3])
    t.equal(result.count, 2)
    t.same(
      result.inserted.map((r) => r.title),
      ['a', 'c'],
    )
    t.same(await titles(), ['a', 'c'])
  },
)

t.test('several rows, all allowed; all refused', async (t) => {
  const values = [
    { group_id: G1, title: 'a', created_by: 'alice' },
    { group_id: G2, title: 'b', created_by: 'alice' },
  ]
  const all = await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values,
    guard: member,
    returning: [],
  })
  t.same(all, { inserted: [], refused: [], count: 2 }, 'returning [] returns no rows but counts')
  const none = await guardedInsert(pool, outsider, {
    into: 'discussion_threads',
    values,
    guard: member,
  })
  t.same(none, { inserted: [], refused: [0, 1], count: 0 })
  t.same(await titles(), ['a', 'b'])
  t.same(
    await guardedInsert(pool, alice, { into: 'discussion_threads', values: [], guard: member }),
    {
      inserted: [],
      refused: [],
      count: 0,
    },
  )
})

t.test('atomic: one refused row refuses all and nothing is written', async (t) => {
  const values = [
    { group_id: G1, title: 'a', created_by: 'alice' },
    { group_id: G3, title: 'b', created_by: 'alice' },
  ]
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values,
      guard: member,
      readGuard: member,
      atomic: true,
    }),
    { code: 'KH_CAPABILITY_DENIED', operation: 'insert', visible: false },
  )
  t.same(await titles(), [])
  const ok = await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values: [values[0]!],
    guard: member,
    atomic: true,
  })
  t.equal(ok.count, 1)
  t.same(await titles(), ['a'])
})

t.test('admin inserts anywhere; adminOnly refuses everyone else', async (t) => {
  await guardedInsert(pool, admin, {
    into: 'discussion_threads',
    values: { group_id: G3, title: 'admin', created_by: 'root' },
    guard: member,
  })
  await guardedInsert(pool, admin, {
    into: 'discussion_threads',
    values: { group_id: G3, title: 'admin only', created_by: 'root' },
    guard: adminOnly(),
  })
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: { group_id: G1, title: 'x', created_by: 'alice' },
      guard: adminOnly(),
    }),
    { code: 'KH_CAPABILITY_DENIED' },
  )
  t.same(await titles(), ['admin', 'admin only'])
})

t.test('isSubject: only rows authored by the holder', async (t) => {
  const mine = { group_id: G1, title: 'mine', created_by: 'alice' }
  const theirs = { group_id: G1, title: 'theirs', created_by: 'bob' }
  const result = await guardedInsert(pool, alice, {
    into: 'discussion_threads',
    values: [mine, theirs],
    guard: isSubject('created_by'),
  })
  t.same(result.refused, [1])
  t.same(await titles(), ['mine'])
})

t.test('parent guards: a post in a thread of my group; a comment two levels down', async (t) => {
  const t1 = await forum.thread(G1)
  const t3 = await forum.thread(G3)
  const posts = await guardedInsert(pool, alice, {
    into: 'posts',
    values: [
      { thread_id: t1, content: 'in G1', author: 'alice' },
      { thread_id: t3, content: 'in G3', author: 'alice' },
      { thread_id: '00000000-0000-4000-8000-0000000000ff', content: 'no thread', author: 'alice' },
    ],
    guard: postMember,
  })
  t.same(posts.refused, [1, 2])
  t.same(
    (await forum.rows('SELECT content FROM posts')).map((r) => r.content),
    ['in G1'],
  )
  const p1 = posts.inserted[0]!.id as string
  const p3 = await forum.post(t3)
  const comments = await guardedInsert(pool, alice, {
    into: 'comments',
    values: [
      { post_id: p1, body: 'ok', author: 'alice' },
      { post_id: p3, body: 'refused', author: 'alice' },
    ],
    guard: commentMember,
  })
  t.same(comments.refused, [1])
  const adminComment = await guardedInsert(pool, admin, {
    into: 'comments',
    values: { post_id: p3, body: 'admin', author: 'root' },
    guard: commentMember,
  })
  t.equal(adminComment.body, 'admin')
  t.same(
    (await forum.rows('SELECT body FROM comments ORDER BY body')).map((r) => r.body),
    ['admin', 'ok'],
  )
})

t.test('a group column guard on integer and text group IDs casts the array', async (t) => {
  await pool.query(
    'CREATE TABLE int_things (id serial PRIMARY KEY, team bigint NOT NULL, label text)',
  )
  await pool.query('CREATE TABLE text_things (id serial PRIMARY KEY, team text NOT NULL)')
  const ints = makeCapability({
    groupIdType: 'bigint',
    groups: { member: ['1', '9007199254740993'] },
  })
  const result = await guardedInsert(pool, ints, {
    into: 'int_things',
    values: [
      { team: 9007199254740993n, label: 'big' },
      { team: 2, label: 'two' },
    ],
    guard: inGroup('team', 'member'),
  })
  t.same(result.refused, [1])
  t.same(await forum.rows('SELECT team::text FROM int_things'), [{ team: '9007199254740993' }])
  const texts = makeCapability({ groupIdType: 'text', groups: { member: ['a,b', 'c"d'] } })
  const r2 = await guardedInsert(pool, texts, {
    into: 'public.text_things',
    values: [{ team: 'a,b' }, { team: 'c"d' }, { team: 'a' }],
    guard: inGroup('team', 'member'),
  })
  t.same(r2.refused, [2])
})

t.test(
  'values are bound as pg binds them, typed by their columns, one row or several',
  async (t) => {
    await pool.query(`CREATE TABLE typed_things (
    id serial PRIMARY KEY, group_id uuid NOT NULL, author uuid NOT NULL, big bigint, tags int[],
    doc jsonb, bytes bytea, at timestamptz, note text)`)
    const me = makeCapability({
      subject: '00000000-0000-4000-8000-00000000000a',
      groups: { member: [G1] },
    })
    const row = (note: string) => ({
      group_id: G1,
      author: me.subject,
      big: 9007199254740993n,
      tags: [1, 2],
      doc: { nested: ['a', 1] },
      bytes: Buffer.from([0, 255]),
      at: new Date('2026-01-02T03:04:05Z'),
      note,
    })
    const guard = and(inGroup('group_id', 'member'), isSubject('author'))
    const one = await guardedInsert(pool, me, { into: 'typed_things', values: row('one'), guard })
    const several = await guardedInsert(pool, me, {
      into: 'typed_things',
      values: [row('two'), row('three'), { ...row('refused'), author: G2 }],
      guard,
    })
    t.same(several.refused, [2], 'isSubject compares the uuid column with the subject')
    const expected = {
      group_id: G1,
      author: me.subject,
      big: '9007199254740993',
      tags: [1, 2],
      doc: { nested: ['a', 1] },
      bytes: Buffer.from([0, 255]),
      at: new Date('2026-01-02T03:04:05Z'),
    }
    t.match(one, { ...expected, note: 'one' })
    t.match(several.inserted, [
      { ...expected, note: 'two' },
      { ...expected, note: 'three' },
    ])
    t.same(
      (await forum.rows('SELECT note FROM typed_things ORDER BY id')).map((r) => r.note),
      ['one', 'two', 'three'],
    )
    await t.rejects(
      guardedInsert(pool, me, {
        into: 'typed_things',
        values: { ...row('bad'), big: 'not a number' },
        guard,
      }),
      { code: 'KH_BAD_REQUEST' },
      'a value its column cannot take is a 400, as in any pg query',
    )
  },
)

t.test(
  'several rows: any count, refused indexes in input order, inserted rows in input order',
  async (t) => {
    for (const count of [3, 5, 8, 9]) {
      await pool.query('TRUNCATE discussion_threads CASCADE')
      const values = Array.from({ length: count }, (_, i) => ({
        group_id: i % 2 === 0 ? G1 : G3,
        title: `t${i}`,
        created_by: 'alice',
      }))
      const result = await guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values,
        guard: member,
      })
      const refused = values.flatMap((v, i) => (v.group_id === G3 ? [i] : []))
      t.same(result.refused, refused, `${count} rows: the odd ones are refused`)
      t.same(
        result.inserted.map((r) => r.title),
        values.filter((v) => v.group_id === G1).map((v) => v.title),
      )
      t.equal(result.count, count - refused.length)
      t.equal((await titles()).length, count - refused.length, 'no padding row is written')
    }
  },
)

t.test('row counts chosen by a client share a handful of prepared statements', async (t) => {
  const client = new pg.Client({ connectionString: forum.url })
  await client.connect()
  try {
    for (let count = 1; count <= 40; count++) {
      await guardedInsert(client, alice, {
        into: 'discussion_threads',
        values: Array.from({ length: count }, () => ({
          group_id: G1,
          title: 'x',
          created_by: 'alice',
        })),
        guard: member,
        returning: ['id'],
      })
    }
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'keyhole\\_%'`,
    )
    // VALUES lists of 2, 4, 8, 16, 32 and 64 rows.
    t.equal(rows[0]!.n, 6, '40 row counts → 6 statements')
    const many = Array.from({ length: 1025 }, () => ({
      group_id: G1,
      title: 'x',
      created_by: 'alice',
    }))
    const result = await guardedInsert(client, alice, {
      into: 'discussion_threads',
      values: many,
      guard: member,
      returning: [],
    })
    t.equal(result.count, 1025)
    const after = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'keyhole\\_%'`,
    )
    t.equal(after.rows[0]!.n, 6, 'more than 1 024 rows: planned once, not kept on the connection')
  } finally {
    await client.end()
  }
})

t.test(
  'more values than one statement can bind → 400 KH_BAD_REQUEST, nothing written',
  async (t) => {
    const values = Array.from({ length: Math.floor(MAX_VALUES / 3) + 1 }, () => ({
      group_id: G1,
      title: 'x',
      created_by: 'alice',
    }))
    await t.rejects(
      guardedInsert(pool, alice, { into: 'discussion_threads', values, guard: member }),
      {
        code: 'KH_BAD_REQUEST',
        message: /at most 21666 rows of 3 columns/,
      },
    )
    t.same(await titles(), [])
    const most = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: values.slice(1),
      guard: member,
      returning: [],
    })
    t.equal(most.count, 21666, 'the largest insert that fits is one statement')
  },
)

t.test(
  'a guard on a column the values leave out reads NULL: refused, nothing written',
  async (t) => {
    await t.rejects(
      guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values: { title: 'no group', created_by: 'alice' },
        guard: member,
        readGuard: member,
      }),
      { code: 'KH_CAPABILITY_DENIED', visible: false },
    )
    const several = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: [
        { title: 'a', created_by: 'alice' },
        { title: 'b', created_by: 'alice' },
      ],
      guard: member,
    })
    t.same(several, { inserted: [], refused: [0, 1], count: 0 })
    t.same(await titles(), [])
  },
)

t.test(
  'a value that is undefined (an optional property not given) is left out: the column takes its default',
  async (t) => {
    const given: { group_id: string; title: string; created_by: string; created_at?: Date } = {
      group_id: G1,
      title: 'one',
      created_by: 'alice',
      created_at: undefined,
    }
    const one = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: given,
      guard: member,
    })
    t.type(one.created_at, Date, 'the default, not NULL (a NOT NULL violation)')
    const several = await guardedInsert(pool, alice, {
      into: 'discussion_threads',
      values: [
        { group_id: G1, title: 'two', created_by: 'alice', created_at: undefined },
        { group_id: G1, title: 'three', created_by: 'alice' },
      ],
      guard: member,
    })
    t.equal(several.count, 2, 'rows that differ only by undefined keys have the same columns')
    t.same(await titles(), ['one', 'three', 'two'])
    await t.rejects(
      guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values: [
          { group_id: G1, title: 'four', created_by: 'alice' },
          { group_id: G1, title: undefined, created_by: 'alice' },
        ],
        guard: member,
      }),
      { code: 'KH_BAD_REQUEST', message: 'Every row to insert must have the same columns' },
      'a column given in one row and undefined in another',
    )
    await t.rejects(
      guardedInsert(pool, alice, {
        into: 'discussion_threads',
        values: { title: undefined },
        guard: member,
      }),
      {
        code: 'KH_BAD_REQUEST',
        message: 'Each row to insert must be an object with at least one column',
      },
      'no column given at all',
    )
  },
)
