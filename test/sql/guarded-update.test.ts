import t from 'tap'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import { and, isSubject } from '../../src/sql/guard.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import {
  authorOrModerator,
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
const admin = makeCapability({ subject: 'root', admin: true })

const state = async () =>
  (
    await forum.rows<{ title: string; group_id: string }>(
      'SELECT title, group_id FROM discussion_threads ORDER BY created_at, title',
    )
  ).map((r) => `${r.title}@${GROUP_NAMES[r.group_id]}`)
const GROUP_NAMES: Record<string, string> = { [G1]: 'G1', [G2]: 'G2', [G3]: 'G3' }

t.beforeEach(async () => {
  await pool.query('TRUNCATE discussion_threads CASCADE')
})

t.test(
  'one row: success returns it; refusal throws 403 or 404; absent throws NotFound',
  async (t) => {
    const mine = await forum.thread(G2, 'mine', 'bob')
    const other = await forum.thread(G3, 'other', 'bob')
    const readable = await forum.thread(G1, 'readable', 'bob')
    const result = await guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id: mine },
      set: { title: 'renamed' },
      guard: moderator,
      readGuard: member,
    })
    t.equal(result.count, 1)
    t.match(result.rows, [{ id: mine, title: 'renamed', group_id: G2 }])
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id: other },
        set: { title: 'x' },
        guard: moderator,
        readGuard: member,
      }),
      {
        code: 'KH_CAPABILITY_DENIED',
        operation: 'update',
        table: 'discussion_threads',
        visible: false,
        statusCode: 404,
      },
    )
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id: readable },
        set: { title: 'x' },
        guard: moderator,
        readGuard: member,
      }),
      { code: 'KH_CAPABILITY_DENIED', visible: true, statusCode: 403 },
    )
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id: readable },
        set: { title: 'x' },
        guard: moderator,
      }),
      { code: 'KH_CAPABILITY_DENIED', visible: false },
      'no read guard: 404',
    )
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id: '00000000-0000-4000-8000-0000000000ff' },
        set: { title: 'x' },
        guard: moderator,
      }),
      { code: 'KH_NOT_FOUND', statusCode: 404 },
    )
    t.same(await state(), ['renamed@G2', 'other@G3', 'readable@G1'])
  },
)

t.test('several rows across groups: only the allowed ones change', async (t) => {
  for (const g of [G1, G2, G3]) await forum.thread(g, 'old', 'bob')
  const result = await guardedUpdate(pool, alice, {
    table: 'discussion_threads',
    where: { title: 'old' },
    set: { title: 'new' },
    guard: member,
    returning: [],
  })
  t.same(result, { rows: [], count: 2 })
  t.same((await state()).sort(), ['new@G1', 'new@G2', 'old@G3'])
  await t.rejects(
    guardedUpdate(pool, makeCapability({ groups: { member: [G1, G2] } }), {
      table: 'discussion_threads',
      where: { title: 'old' },
      set: { title: 'x' },
      guard: member,
    }),
    { code: 'KH_CAPABILITY_DENIED' },
    'full refusal',
  )
  const all = await guardedUpdate(pool, admin, {
    table: 'discussion_threads',
    where: {},
    set: { title: 'admin' },
    guard: member,
    returning: ['title'],
  })
  t.same(all.rows, [{ title: 'admin' }, { title: 'admin' }, { title: 'admin' }])
  t.same(await state(), ['admin@G1', 'admin@G2', 'admin@G3'])
})

t.test('a row cannot be moved into a group the holder does not control', async (t) => {
  const id = await forum.thread(G1, 'movable', 'alice')
  await t.rejects(
    guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id },
      set: { group_id: G3 },
      guard: member,
      readGuard: member,
    }),
    { code: 'KH_CAPABILITY_DENIED', visible: true, statusCode: 403 },
  )
  t.same(await state(), ['movable@G1'])
  await guardedUpdate(pool, alice, {
    table: 'discussion_threads',
    where: { id },
    set: { group_id: G2 },
    guard: member,
  })
  t.same(await state(), ['movable@G2'], 'into a group it controls: allowed')
  await guardedUpdate(pool, admin, {
    table: 'discussion_threads',
    where: { id },
    set: { group_id: G3 },
    guard: member,
  })
  t.same(await state(), ['movable@G3'], 'admin moves anywhere')
})

t.test('author-or-moderator: the author cannot hand the row to someone else', async (t) => {
  const id = await forum.thread(G1, 'by alice', 'alice')
  await t.rejects(
    guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id },
      set: { created_by: 'mallory' },
      guard: authorOrModerator,
      readGuard: member,
    }),
    { code: 'KH_CAPABILITY_DENIED', visible: true },
  )
  await guardedUpdate(pool, alice, {
    table: 'discussion_threads',
    where: { id },
    set: { title: 'edited', created_by: 'alice' },
    guard: and2(),
  })
  t.same(await state(), ['edited@G1'])
})
function and2() {
  return isSubject('created_by')
}

t.test(
  'parent guard: a post can be moved only to a thread in a group the holder is in',
  async (t) => {
    const t1 = await forum.thread(G1)
    const t3 = await forum.thread(G3)
    const post = await forum.post(t1, 'p')
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'posts',
        where: { id: post },
        set: { thread_id: t3 },
        guard: postMember,
        readGuard: postMember,
      }),
      { code: 'KH_CAPABILITY_DENIED', visible: true },
    )
    const done = await guardedUpdate(pool, alice, {
      table: 'posts',
      where: { id: post },
      set: { content: 'edited' },
      guard: postMember,
    })
    t.match(done.rows, [{ content: 'edited', thread_id: t1 }])
  },
)

t.test('misuse and bad input', async (t) => {
  const id = await forum.thread(G1)
  for (const set of [{}, null, [], 'title']) {
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id },
        set: set as never,
        guard: member,
      }),
      { code: 'KH_BAD_REQUEST' },
      `set ${JSON.stringify(set)}`,
    )
  }
  await t.rejects(
    guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: undefined as never,
      set: { title: 'x' },
      guard: member,
    }),
    {
      code: 'KH_INVALID_OPTIONS',
    },
  )
  await t.rejects(
    guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id },
      set: { title: 'x' },
    } as never),
    { code: 'KH_INVALID_OPTIONS' },
  )
  await t.rejects(
    guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id },
      set: { title: null },
      guard: member,
    }),
    {
      code: 'KH_BAD_REQUEST',
      message: 'Bad request',
    },
    'NOT NULL violation → 400',
  )
})

t.test(
  'new values are typed by their columns; one its column cannot take → 400, unchanged',
  async (t) => {
    await pool.query(`CREATE TABLE typed_notes (id serial PRIMARY KEY, group_id uuid NOT NULL,
    owner uuid NOT NULL, doc jsonb, big bigint, at timestamptz)`)
    const me = makeCapability({
      subject: '00000000-0000-4000-8000-00000000000a',
      groups: { moderator: [G1, G2] },
    })
    await forum.rows('INSERT INTO typed_notes (group_id, owner) VALUES ($1, $2)', [G1, me.subject])
    const guard = and(moderator, isSubject('owner'))
    const { rows } = await guardedUpdate(pool, me, {
      table: 'typed_notes',
      where: { id: 1 },
      set: { group_id: G2, doc: { a: [1] }, big: 2n ** 62n, at: new Date('2026-01-02T03:04:05Z') },
      guard,
    })
    t.match(rows, [{ group_id: G2, doc: { a: [1] }, big: String(2n ** 62n) }])
    t.same(rows[0]!.at, new Date('2026-01-02T03:04:05Z'))
    await t.rejects(
      guardedUpdate(pool, me, {
        table: 'typed_notes',
        where: { id: 1 },
        set: { group_id: G1, big: 'many' },
        guard,
      }),
      { code: 'KH_BAD_REQUEST' },
    )
    await t.rejects(
      guardedUpdate(pool, me, {
        table: 'typed_notes',
        where: { id: 1 },
        set: { owner: G3 },
        guard,
        readGuard: moderator,
      }),
      { code: 'KH_CAPABILITY_DENIED', visible: true },
      'the owner cannot hand the row to another subject (the uuid column is compared as a uuid)',
    )
    t.same(await forum.rows('SELECT group_id, owner::text, big::text FROM typed_notes'), [
      { group_id: G2, owner: me.subject, big: String(2n ** 62n) },
    ])
  },
)

t.test(
  'a value that is undefined (an optional property not given) leaves its column alone',
  async (t) => {
    const id = await forum.thread(G1, 'before', 'bob')
    const patch: { title?: string; created_by?: string } = { title: 'after' }
    const result = await guardedUpdate(pool, alice, {
      table: 'discussion_threads',
      where: { id },
      set: { ...patch, created_by: patch.created_by as string },
      guard: member,
    })
    t.match(result.rows, [{ id, title: 'after', created_by: 'bob' }], 'created_by kept, not NULL')
    await t.rejects(
      guardedUpdate(pool, alice, {
        table: 'discussion_threads',
        where: { id },
        set: { title: undefined },
        guard: member,
      }),
      { code: 'KH_BAD_REQUEST', message: 'Nothing to update: set must name at least one column' },
      'nothing left to set',
    )
  },
)
