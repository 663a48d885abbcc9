import t from 'tap'
import { guardedDelete } from '../../src/sql/guarded-delete.ts'
import { inGroup } from '../../src/sql/guard.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import {
  commentMember,
  createForum,
  G1,
  G2,
  G3,
  member,
  moderator,
  postModerator,
} from '../helpers/sql-forum.ts'

const forum = await createForum(t)
const { pool } = forum
const alice = makeCapability({ subject: 'alice', groups: { member: [G1], moderator: [G2] } })
const admin = makeCapability({ subject: 'root', admin: true })

const titles = async () =>
  (await forum.rows<{ title: string }>('SELECT title FROM discussion_threads ORDER BY title')).map(
    (r) => r.title,
  )

t.beforeEach(async () => {
  await pool.query('TRUNCATE discussion_threads CASCADE')
})

t.test('one row: success; refusal 403/404; absent → NotFound', async (t) => {
  const mod = await forum.thread(G2, 'moderated')
  const mem = await forum.thread(G1, 'member only')
  const out = await forum.thread(G3, 'outside')
  const done = await guardedDelete(pool, alice, {
    from: 'discussion_threads',
    where: { id: mod },
    guard: moderator,
    readGuard: member,
    returning: ['title'],
  })
  t.same(done, { rows: [{ title: 'moderated' }], count: 1 })
  await t.rejects(
    guardedDelete(pool, alice, {
      from: 'discussion_threads',
      where: { id: mem },
      guard: moderator,
      readGuard: member,
    }),
    {
      code: 'KH_CAPABILITY_DENIED',
      operation: 'delete',
      visible: true,
      statusCode: 403,
    },
  )
  await t.rejects(
    guardedDelete(pool, alice, {
      from: 'discussion_threads',
      where: { id: out },
      guard: moderator,
      readGuard: member,
    }),
    {
      code: 'KH_CAPABILITY_DENIED',
      visible: false,
      statusCode: 404,
    },
  )
  await t.rejects(
    guardedDelete(pool, alice, {
      from: 'discussion_threads',
      where: { id: mod },
      guard: moderator,
    }),
    { code: 'KH_NOT_FOUND' },
  )
  t.same(await titles(), ['member only', 'outside'])
})

t.test('several rows across groups: partial, full and refused', async (t) => {
  for (const g of [G1, G2, G2, G3]) await forum.thread(g, `t ${g.slice(-1)}`, 'bob')
  const some = await guardedDelete(pool, alice, {
    from: 'discussion_threads',
    where: { created_by: 'bob' },
    guard: member,
  })
  t.same(some, { rows: [], count: 3 })
  t.same(await titles(), ['t 3'])
  await t.rejects(
    guardedDelete(pool, alice, {
      from: 'discussion_threads',
      where: { created_by: 'bob' },
      guard: member,
    }),
    { code: 'KH_CAPABILITY_DENIED' },
  )
  t.same(await titles(), ['t 3'])
  const all = await guardedDelete(pool, admin, {
    from: 'discussion_threads',
    where: {},
    guard: moderator,
    returning: '*',
  })
  t.equal(all.count, 1)
  t.same(await titles(), [])
})

t.test(
  'parent guards: moderators delete posts via the thread; comments two levels down',
  async (t) => {
    const t1 = await forum.thread(G1)
    const t2 = await forum.thread(G2)
    const p1 = await forum.post(t1)
    const p2 = await forum.post(t2)
    await forum.comment(p1, 'c1')
    await forum.comment(p2, 'c2')
    await t.rejects(
      guardedDelete(pool, alice, { from: 'posts', where: { id: p1 }, guard: postModerator }),
      { code: 'KH_CAPABILITY_DENIED' },
    )
    t.equal(
      (await guardedDelete(pool, alice, { from: 'posts', where: { id: p2 }, guard: postModerator }))
        .count,
      1,
    )
    t.same(
      (await forum.rows('SELECT id FROM posts')).map((r) => r.id),
      [p1],
    )
    t.same(
      (await forum.rows('SELECT body FROM comments')).map((r) => r.body),
      ['c1'],
      'cascade removed c2',
    )
    t.equal(
      (
        await guardedDelete(pool, alice, {
          from: 'comments',
          where: { body: 'c1' },
          guard: commentMember,
        })
      ).count,
      1,
    )
  },
)

t.test('a row still referenced → 409 Conflict, DETAIL not echoed', async (t) => {
  const G4 = '00000000-0000-4000-8000-000000000004'
  await pool.query(`INSERT INTO groups (id, name) VALUES ($1, 'g4')`, [G4])
  await forum.thread(G4)
  const e = await guardedDelete(pool, admin, {
    from: 'groups',
    where: { id: G4 },
    guard: inGroup('id', 'member'),
  }).then(
    () => undefined,
    (e: unknown) => e as Error,
  )
  t.match(e, { code: 'KH_CONFLICT', statusCode: 409, message: 'Conflict with an existing row' })
  t.notMatch(JSON.stringify(e), /Key|detail|\(id\)|foreign/i)
  t.notOk(Object.keys(e as object).includes('cause'), 'the pg error is a non-enumerable cause')
  t.equal(((e as Error).cause as { code: string }).code, '23503')
  t.equal((await forum.rows('SELECT id FROM groups WHERE id = $1', [G4])).length, 1)
})
