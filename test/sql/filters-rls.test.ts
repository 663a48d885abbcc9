/**
 * Filters in 'rls' mode: the same `op` filters, order, pages and count through a request session
 * (the runtime role under keyhole's forced policies, the signed capability set), as `request.db`
 * runs them there. Nothing a filter says reaches a row the policies hide: not with the handle's
 * guard, and not even with a handle whose guard is wider than the database's policy (the second
 * line alone decides).
 */
import t from 'tap'
import { createSessionFactory } from '../../src/db/session.ts'
import { likeContains, op } from '../../src/sql/filter.ts'
import { isSubject } from '../../src/sql/guard.ts'
import { bindPolicies, definePolicies, type PolicyHandle } from '../../src/sql/policies.ts'
import type { Where } from '../../src/sql/where.ts'
import { capability, createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)
const { groupA, groupB } = k
// Besides the helper's two notes: 10 more, alternating groups and owners, with LIKE-ish bodies.
await k.db.pool.query(
  `INSERT INTO notes (group_id, owner, body)
   SELECT CASE WHEN i % 2 = 0 THEN $1::uuid ELSE $2::uuid END,
          CASE WHEN i % 3 = 0 THEN 'alice' ELSE 'bob' END,
          (ARRAY['50% off', 'a_b', 'plain', 'Plain', 'x'])[1 + i % 5] || ' ' || i
   FROM generate_series(1, 10) AS i`,
  [groupA, groupB],
)
type Note = { id: number; group_id: string; owner: string; body: string }
const all = (await k.db.pool.query<Note>('SELECT * FROM notes ORDER BY id')).rows
const inA = all.filter((n) => n.group_id === groupA)
const sessions = createSessionFactory({ pool: k.runtimePool(), signingKey: k.signingKey })
const alice = capability({ subject: 'alice', groups: { member: [groupA] } })
const bob = capability({ subject: 'bob', groups: { moderator: [groupB] } })
const ids = (rows: readonly { id: unknown }[]) =>
  rows.map((r) => Number(r.id)).sort((a, b) => a - b)
const as = <T>(who: typeof alice, work: (db: PolicyHandle) => Promise<T>) =>
  sessions.withCapability(who, (db) => work(bindPolicies(notesPolicies, db, who)))

t.test('every operator, through the session, only on the rows the policies show', async (t) => {
  const cases: [string, Where, (n: Note) => boolean][] = [
    ['eq', { owner: op({ eq: 'bob' }) }, (n) => n.owner === 'bob'],
    ['ne', { owner: op({ ne: 'bob' }) }, (n) => n.owner !== 'bob'],
    ['range', { id: op({ gt: 3, lte: 8 }) }, (n) => n.id > 3 && n.id <= 8],
    ['lt, gte', { id: op({ gte: 2, lt: 6 }) }, (n) => n.id >= 2 && n.id < 6],
    ['in', { id: op({ in: all.map((n) => n.id) }) }, () => true],
    ['in []', { id: op({ in: [] }) }, () => false],
    ['notIn', { owner: op({ notIn: ['alice'] }) }, (n) => n.owner !== 'alice'],
    ['notIn []', { owner: op({ notIn: [] }) }, () => true],
    ['like', { body: op({ like: likeContains('_') }) }, (n) => n.body.includes('_')],
    ['ilike', { body: op({ ilike: 'plain%' }) }, (n) => n.body.toLowerCase().startsWith('plain')],
    ['ilike %', { body: op({ ilike: likeContains('0%') }) }, (n) => n.body.includes('0%')],
    ['isNull', { body: op({ isNull: false }) }, () => true],
    [
      'or naming the hidden group',
      { g: op.or({ group_id: groupB }, { owner: 'alice' }) },
      (n) => n.group_id === groupB || n.owner === 'alice',
    ],
    ['not', { g: op.not({ group_id: groupA }) }, (n) => n.group_id !== groupA],
    ['notIn the own group', { group_id: op({ notIn: [groupA] }) }, (n) => n.group_id !== groupA],
    [
      'and',
      { g: op.and({ owner: 'bob' }, { id: op({ gt: 4 }) }) },
      (n) => n.owner === 'bob' && n.id > 4,
    ],
  ]
  for (const [name, where, keep] of cases) {
    const { rows, count } = await as(alice, async (db) => ({
      rows: await db.select<Note>('notes', where),
      count: await db.count('notes', where),
    }))
    t.same(ids(rows), ids(inA.filter(keep)), name)
    t.notOk(
      rows.some((n) => n.group_id === groupB),
      `${name}: nothing of group B`,
    )
    t.equal(count, rows.length, `${name}: count`)
  }
})

t.test('the second line alone: a handle whose guard is wider than the policy', async (t) => {
  // A note of alice's in group B: the handle's guard (her own notes) would show it; RLS does not.
  await k.db.pool.query(
    `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'alice', 'mine in B')`,
    [groupB],
  )
  t.teardown(() => k.db.pool.query(`DELETE FROM notes WHERE body = 'mine in B'`))
  const wide = definePolicies({ notes: { read: isSubject('owner') } })
  const rows = await sessions.withCapability(alice, (db) =>
    bindPolicies(wide, db, alice).select<Note>('notes', {
      g: op.or({ group_id: groupB }, { body: 'mine in B' }),
    }),
  )
  t.same(rows, [], 'the forced policy hides group B whatever the filter and the guard')
  const count = await sessions.withCapability(alice, (db) =>
    bindPolicies(wide, db, alice).count('notes'),
  )
  t.equal(count, inA.filter((n) => n.owner === 'alice').length, 'count too')
})

t.test('order, keyset pages, offset and limit through the session', async (t) => {
  const orderBy = [
    ['owner', 'desc'],
    ['id', 'asc'],
  ] as const
  const full = await as(alice, (db) => db.select<Note>('notes', {}, { orderBy }))
  t.same(ids(full), ids(inA))
  const seen: number[] = []
  let after: Note | undefined
  for (;;) {
    const page: Note[] = await as(alice, (db) =>
      db.select<Note>('notes', {}, { orderBy, limit: 2, ...(after ? { after } : {}) }),
    )
    seen.push(...page.map((n) => n.id))
    if (page.length < 2) break
    after = page.at(-1)
  }
  t.same(
    seen,
    full.map((n) => n.id),
    'every row once, in order (mixed directions)',
  )
  t.same(
    (await as(alice, (db) => db.select<Note>('notes', {}, { orderBy, limit: 2, offset: 1 }))).map(
      (n) => n.id,
    ),
    full.slice(1, 3).map((n) => n.id),
  )
  for (const bad of [-1, 0.5, '2']) {
    await t.rejects(
      as(alice, (db) => db.select('notes', {}, { limit: bad as number })),
      { code: 'KH_BAD_REQUEST', statusCode: 400 },
    )
    await t.rejects(
      as(alice, (db) => db.select('notes', {}, { offset: bad as number })),
      { code: 'KH_BAD_REQUEST', statusCode: 400 },
    )
  }
  await t.rejects(
    as(alice, (db) => db.select('notes', {}, { orderBy, after: { owner: 'x' } })),
    { code: 'KH_BAD_REQUEST' },
  )
})

t.test(
  'operators on UPDATE and DELETE under the policies: nothing written on refusal',
  async (t) => {
    const snapshot = async () => (await k.db.pool.query('SELECT * FROM notes ORDER BY id')).rows
    const before = await snapshot()
    // bob moderates group B only: a filter that names group A finds nothing he may see.
    await t.rejects(
      as(bob, (db) => db.update('notes', { group_id: op({ in: [groupA] }) }, { body: 'x' })),
      { code: /^KH_(NOT_FOUND|CAPABILITY_DENIED)$/, statusCode: 404 },
    )
    await t.rejects(
      as(bob, (db) => db.delete('notes', { g: op.not({ group_id: op({ notIn: [groupA] }) }) })),
      { code: /^KH_(NOT_FOUND|CAPABILITY_DENIED)$/, statusCode: 404 },
    )
    await t.rejects(
      as(alice, (db) => db.delete('notes', { id: op({ gt: 0 }) })),
      { code: 'KH_CAPABILITY_DENIED', statusCode: 403 },
    )
    t.same(await snapshot(), before, 'nothing written')
    const changed = await sessions
      .withCapability(bob, async (db) => {
        const handle = bindPolicies(notesPolicies, db, bob)
        const updated = await handle.update(
          'notes',
          { body: op({ like: 'x%' }), id: op({ gt: 0 }) },
          { owner: 'bob' },
          { returning: ['id'] },
        )
        const deleted = await handle.delete(
          'notes',
          { g: op.or({ body: op({ like: 'plain%' }) }, { body: op({ like: 'Plain%' }) }) },
          { returning: ['id', 'group_id'] },
        )
        throw Object.assign(new Error('roll back'), { updated, deleted })
      })
      .catch((e: { updated: { rows: { id: number }[] }; deleted: { rows: Note[] } }) => e)
    t.same(
      ids(changed.updated.rows),
      ids(all.filter((n) => n.group_id === groupB && n.body.startsWith('x'))),
    )
    t.same(
      ids(changed.deleted.rows),
      ids(all.filter((n) => n.group_id === groupB && n.body.toLowerCase().startsWith('plain'))),
    )
    t.ok(
      changed.deleted.rows.length > 0 && changed.deleted.rows.every((n) => n.group_id === groupB),
    )
    t.same(await snapshot(), before, 'rolled back')
  },
)
