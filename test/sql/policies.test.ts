import t from 'tap'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import { inGroup, isSubject } from '../../src/sql/guard.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import {
  createForum,
  G1,
  G2,
  G3,
  member,
  moderator,
  postMember,
  postModerator,
} from '../helpers/sql-forum.ts'

const policies = definePolicies({
  discussion_threads: { read: member, insert: member, update: member, delete: moderator },
  posts: { read: postMember, insert: postMember, delete: postModerator },
  'public.comments': { insert: isSubject('author') },
})

t.test('definePolicies validates and freezes', async (t) => {
  t.ok(
    Object.isFrozen(policies) &&
      Object.isFrozen(policies.tables) &&
      Object.isFrozen(policies.tables.posts),
  )
  t.same([...policies.roles].sort(), ['member', 'moderator'])
  const bad: [string, unknown, string][] = [
    ['not an object', null, 'KH_INVALID_OPTIONS'],
    ['bad table', { 'posts; DROP': { read: member } }, 'KH_INVALID_IDENTIFIER'],
    ['no operation', { posts: {} }, 'KH_INVALID_OPTIONS'],
    ['policy not an object', { posts: 'member' }, 'KH_INVALID_OPTIONS'],
    ['unknown operation', { posts: { write: member } }, 'KH_INVALID_OPTIONS'],
    ['not a guard', { posts: { read: 'group_id' } }, 'KH_INVALID_OPTIONS'],
  ]
  for (const [name, definitions, code] of bad) {
    t.throws(() => definePolicies(definitions as never), { code, statusCode: 500 }, name)
  }
})

t.test('the bound handle runs every statement through the table policy', async (t) => {
  const forum = await createForum(t)
  const alice = makeCapability({ subject: 'alice', groups: { member: [G1], moderator: [G2] } })
  const db = bindPolicies(policies, forum.pool, alice)
  const thread = await db.insert<{ id: string; title: string }>('discussion_threads', {
    group_id: G1,
    title: 'hi',
    created_by: 'alice',
  })
  t.equal(thread.title, 'hi')
  const many = await db.insert('discussion_threads', [
    { group_id: G2, title: 'b', created_by: 'alice' },
    { group_id: G3, title: 'c', created_by: 'alice' },
  ])
  t.same(many.refused, [1])
  await t.rejects(
    db.insert('discussion_threads', [{ group_id: G3, title: 'c', created_by: 'alice' }], {
      atomic: true,
    }),
    { code: 'KH_CAPABILITY_DENIED', visible: false },
  )
  t.same(
    (
      await db.select('discussion_threads', {}, { orderBy: 'title', columns: ['title'], limit: 10 })
    ).map((r) => r.title),
    ['b', 'hi'],
  )
  t.same(await db.select('discussion_threads'), await db.select('discussion_threads', undefined))
  const updated = await db.update(
    'discussion_threads',
    { id: thread.id },
    { title: 'renamed' },
    { returning: ['title'] },
  )
  t.same(updated.rows, [{ title: 'renamed' }])
  await t.rejects(
    db.delete('discussion_threads', { id: thread.id }),
    { code: 'KH_CAPABILITY_DENIED', visible: true, statusCode: 403 },
    'member, not moderator',
  )
  const g3 = await forum.thread(G3)
  await t.rejects(db.delete('discussion_threads', { id: g3 }), {
    code: 'KH_CAPABILITY_DENIED',
    visible: false,
    statusCode: 404,
  })
  const post = await db.insert<{ id: string }>(
    'posts',
    { thread_id: thread.id, content: 'p', author: 'alice' },
    { returning: ['id'] },
  )
  await t.rejects(db.delete('posts', { id: post.id }), {
    code: 'KH_CAPABILITY_DENIED',
    visible: true,
  })
  t.equal((await db.delete('discussion_threads', { title: 'b' }, { returning: '*' })).count, 1)
  t.same(await forum.rows('SELECT title FROM discussion_threads ORDER BY title'), [
    { title: 'a thread' },
    { title: 'renamed' },
  ])
  const unprepared = bindPolicies(policies, forum.pool, alice, { prepared: false })
  t.equal((await unprepared.select('posts')).length, 1)
})

t.test('deny by default: no policy for the table or the operation', async (t) => {
  const forum = await createForum(t)
  const db = bindPolicies(policies, forum.pool, makeCapability({ groups: { member: [G1] } }))
  await t.rejects(db.select('groups'), { code: 'KH_NO_POLICY', statusCode: 500 })
  await t.rejects(db.update('posts', {}, { content: 'x' }), { code: 'KH_NO_POLICY' })
  await t.rejects(db.select('public.comments'), { code: 'KH_NO_POLICY' })
  await t.rejects(db.insert('__proto__', { a: 1 }), { code: 'KH_NO_POLICY' })
  await t.rejects(db.delete('toString', {}), { code: 'KH_NO_POLICY', message: /"toString"/ })
})

t.test('roles are checked against the hierarchy when bound', async (t) => {
  const typo = definePolicies({ posts: { read: inGroup('group_id', 'memeber') } })
  t.throws(() => bindPolicies(typo, { query: async () => ({ rows: [] }) }, makeCapability()), {
    code: 'KH_INVALID_OPTIONS',
    message: /"memeber"/,
  })
  t.ok(bindPolicies(policies, { query: async () => ({ rows: [] }) }, makeCapability()))
  t.ok(
    bindPolicies(policies, { query: async () => ({ rows: [] }) }, makeCapability()),
    'checked once per hierarchy',
  )
})
