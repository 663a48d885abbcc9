import t from 'tap'
import { narrowGroups, StatementParams } from '../../src/sql/compile.ts'
import { guardedDelete } from '../../src/sql/guarded-delete.ts'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import type { QueryConfig, Queryable } from '../../src/sql/queryable.ts'
import { columnsOf, renderGuard, sqlText } from '../../src/sql/render-guard.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, G2, G3, member, moderator, postMember } from '../helpers/sql-forum.ts'

const U1 = '00000000-0000-4000-8000-00000000000a'
const U2 = '00000000-0000-4000-8000-00000000000b'

t.test('narrowGroups keeps only known values the holder has, or gives up', async (t) => {
  const uuids = Object.freeze([U1, U2])
  t.same(narrowGroups(uuids, [U2], 'uuid'), [U2])
  t.same(narrowGroups(uuids, [U2.toUpperCase()], 'uuid'), [U2], 'UUIDs compare case-blind')
  t.same(narrowGroups(uuids, [U2, U2, U1], 'uuid'), [U2, U1], 'deduplicated')
  t.same(narrowGroups(uuids, [U2], 'uuid'), [U2], 'member set cached per frozen array')
  const ints = ['7', '-3', '12']
  const table: [string, unknown[], string[] | undefined][] = [
    ['a number', [7], ['7']],
    ['a bigint', [12n], ['12']],
    ['a decimal string', ['-3'], ['-3']],
    ['nothing known', [], undefined],
    ['a value the holder lacks', [7, 8], undefined],
    ['a non-canonical spelling', ['007'], undefined],
    ['an unsafe integer', [2 ** 60], undefined],
    ['a fraction', [7.5], undefined],
    ['null', [null], undefined],
    ['an object', [{ id: 7 }], undefined],
  ]
  for (const [name, values, expected] of table) {
    t.same(narrowGroups(ints, values, 'bigint'), expected, name)
  }
  t.equal(narrowGroups(['Ab'], ['ab'], 'text'), undefined, 'text compares exactly')
  t.same(narrowGroups(['Ab'], ['Ab'], 'text'), ['Ab'])
})

t.test('one known value narrows without a new array per request', async (t) => {
  const only = Object.freeze([U1])
  t.equal(narrowGroups(only, [U1], 'uuid'), only, 'the only group: the holder’s own array')
  t.equal(narrowGroups(only, [U2], 'uuid'), undefined, 'another group: the full array decides')
  t.equal(narrowGroups(only, [null], 'uuid'), undefined)
  const two = Object.freeze([U1, U2])
  const first = narrowGroups(two, [U2], 'uuid')
  t.same(first, [U2])
  t.equal(narrowGroups(two, [U2], 'uuid'), first, 'the same one-group array each time')
  t.ok(Object.isFrozen(first))
  t.equal(narrowGroups(two, ['00000000-0000-4000-8000-00000000000c'], 'uuid'), undefined)
  const mutable = [U1]
  t.not(narrowGroups(mutable, [U1], 'uuid'), mutable, 'an array that may change is never reused')
  t.same(narrowGroups(mutable, [U1], 'uuid'), [U1])
  t.same(narrowGroups([U1, U2], [U2], 'uuid'), [U2])
})

t.test('a group array is narrowable only when every comparison is on a known value', async (t) => {
  const compile = (
    setup: (params: StatementParams) => void,
    sql: (p: StatementParams) => string,
  ) => {
    const params = new StatementParams(false, 'uuid')
    setup(params)
    return params.compile(sql(params)).sources
  }
  const known = (p: StatementParams) => p.know('"t"."group_id"', { kind: 'input', index: 0 })
  const guard = (p: StatementParams) => sqlText(renderGuard(member.node, columnsOf('"t"'), p))
  // The guard compares the known input with the array (`$1 = ANY ($2)`), a one-time filter.
  t.same(compile(known, guard), [
    { kind: 'input', index: 0 },
    { kind: 'groups', role: 'member', narrow: [{ kind: 'input', index: 0 }] },
  ])
  t.same(
    compile(() => {}, guard),
    [{ kind: 'groups', role: 'member' }],
    'nothing known',
  )
  t.same(
    compile(
      known,
      (p) => `${guard(p)} AND ${sqlText(renderGuard(postMember.node, columnsOf('"t"'), p))}`,
    ),
    [
      { kind: 'input', index: 0 },
      { kind: 'groups', role: 'member' },
    ],
    'the same array also compared with a parent row: not narrowable',
  )
  t.same(
    compile(known, (p) => `${p.groups('member')} IS NOT NULL`),
    [{ kind: 'groups', role: 'member' }],
    'a use without a row expression: not narrowable',
  )
})

/** Decodes a binary uuid[] parameter (one dimension) to its text literal. */
function uuidArrayLiteral(buffer: Buffer): string {
  const ids: string[] = []
  const count = buffer.readInt32BE(0) === 0 ? 0 : buffer.readInt32BE(12)
  for (let i = 0; i < count; i++) {
    const hex = buffer.toString('hex', 24 + i * 20, 40 + i * 20)
    ids.push(
      `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    )
  }
  return `{${ids.join(',')}}`
}

/** A Queryable that records each statement's parameters before running it on the pool. */
function recording(db: Queryable) {
  const seen: unknown[][] = []
  return {
    seen,
    /** The group arrays the last statement bound (sent in binary), as literals. */
    get arrays() {
      return (seen.at(-1) ?? []).filter((v) => Buffer.isBuffer(v)).map(uuidArrayLiteral)
    },
    /** How many groups the last statement bound, per group array. */
    get sizes() {
      return this.arrays.map((v) => String(v).split(',').length)
    },
    query(config: QueryConfig) {
      seen.push(config.values ?? [])
      return db.query(config)
    },
  }
}

const forum = await createForum(t)
const many = [
  G1,
  ...Array.from(
    { length: 500 },
    (_, i) => `10000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  ),
  G2,
]
const alice = makeCapability({ subject: 'alice', groups: { member: many, moderator: [G2] } })

t.test(
  'inserts bind only the groups of the rows being inserted; the SQL still decides',
  async (t) => {
    const db = recording(forum.pool)
    const row = await guardedInsert(db, alice, {
      into: 'discussion_threads',
      values: { group_id: G2, title: 'one', created_by: 'alice' },
      guard: member,
    })
    t.equal(row.title, 'one')
    t.same(db.arrays, [`{${G2}}`], 'one group sent, not 502')
    const upper = await guardedInsert(db, alice, {
      into: 'discussion_threads',
      values: { group_id: G1.toUpperCase(), title: 'upper', created_by: 'alice' },
      guard: member,
    })
    t.equal(upper.group_id, G1, 'an upper-case UUID is still the holder’s group')
    t.same(db.arrays, [`{${G1}}`])
    await t.rejects(
      guardedInsert(db, alice, {
        into: 'discussion_threads',
        values: { group_id: G3, title: 'refused', created_by: 'alice' },
        guard: member,
        readGuard: member,
      }),
      { code: 'KH_CAPABILITY_DENIED', visible: false },
    )
    t.same(db.sizes, [502], 'a group the holder lacks: the full array decides')
    const several = await guardedInsert(db, alice, {
      into: 'discussion_threads',
      values: [
        { group_id: G1, title: 'x', created_by: 'alice' },
        { group_id: G2, title: 'y', created_by: 'alice' },
      ],
      guard: member,
    })
    t.equal(several.count, 2)
    t.same(db.arrays, [`{${G1},${G2}}`])
    const partial = await guardedInsert(db, alice, {
      into: 'discussion_threads',
      values: [
        { group_id: G1, title: 'x', created_by: 'alice' },
        { group_id: G3, title: 'z', created_by: 'alice' },
      ],
      guard: member,
    })
    t.same(partial.refused, [1])
    t.same(await forum.rows('SELECT title FROM discussion_threads WHERE group_id = $1', [G3]), [])
  },
)

t.test('a where on the group column narrows SELECT, UPDATE and DELETE', async (t) => {
  const db = recording(forum.pool)
  const thread = await forum.thread(G2, 'mine', 'alice')
  const rows = await guardedSelect(db, alice, {
    from: 'discussion_threads',
    where: { group_id: G2 },
    guard: member,
  })
  t.ok(rows.some((r) => r.id === thread))
  t.equal(db.seen.at(-1)?.[0], G2, 'the where value…')
  t.same(db.arrays, [`{${G2}}`], '…then one group')
  t.same(
    await guardedSelect(db, alice, {
      from: 'discussion_threads',
      where: { group_id: G3 },
      guard: member,
    }),
    [],
  )
  t.same(db.sizes, [502])
  const moved = await guardedUpdate(db, alice, {
    table: 'discussion_threads',
    where: { id: thread, group_id: G2 },
    set: { title: 'renamed' },
    guard: moderator,
  })
  t.equal(moved.count, 1)
  t.same(db.arrays, [`{${G2}}`])
  await t.rejects(
    guardedUpdate(db, alice, {
      table: 'discussion_threads',
      where: { id: thread, group_id: G2 },
      set: { group_id: G1 },
      guard: moderator,
      readGuard: member,
    }),
    { code: 'KH_CAPABILITY_DENIED', visible: true },
    'moving into a group where alice is no moderator is refused',
  )
  const deleted = await guardedDelete(db, alice, {
    from: 'discussion_threads',
    where: { id: thread, group_id: G2 },
    guard: moderator,
  })
  t.equal(deleted.count, 1)
})
