/**
 * Filters in 'guard' mode: every `op` operator and group for success, refusal and the rows it may
 * not reveal; orderBy on several columns, limit/offset and keyset pagination; count(); operators
 * on UPDATE and DELETE. A filter only narrows: the whole `where` is ANDed with the guard, so no
 * filter reaches a row of a group the holder cannot read (G3 below).
 */
import t from 'tap'
import { guardedCount } from '../../src/sql/guarded-count.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { adminOnly, isSubject } from '../../src/sql/guard.ts'
import { escapeLike, isFilter, likeContains, likePrefix, op } from '../../src/sql/filter.ts'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import type { Row } from '../../src/sql/queryable.ts'
import type { Where } from '../../src/sql/where.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, G2, G3, member, moderator } from '../helpers/sql-forum.ts'

const forum = await createForum(t)
const { pool } = forum
// alice reads G1 (member) and G2 (moderator); never G3.
const alice = makeCapability({ subject: 'alice', groups: { member: [G1], moderator: [G2] } })
const admin = makeCapability({ subject: 'root', admin: true })
const policies = definePolicies({
  discussion_threads: { read: member, update: moderator, delete: moderator },
})

/** 12 threads, 4 per group, with distinct times and titles that exercise LIKE. */
const TITLES = ['50% off', '50_50', 'back\\slash', 'Plain', 'plain text', 'x', 'y', 'z']
await pool.query(
  `
  INSERT INTO discussion_threads (group_id, title, created_by, created_at, slug)
  SELECT (ARRAY[$1, $2, $3]::uuid[])[1 + i % 3],
         (ARRAY[${TITLES.map((_, i) => `$${i + 4}`).join(', ')}])[1 + i % ${TITLES.length}],
         CASE WHEN i % 2 = 0 THEN 'alice' ELSE 'bob' END,
         timestamptz '2026-01-01' + (i / 2) * interval '1 hour',
         CASE WHEN i % 4 = 0 THEN NULL ELSE 'slug-' || i END
  FROM generate_series(0, 11) AS i`,
  [G1, G2, G3, ...TITLES],
)
type Thread = {
  id: string
  group_id: string
  title: string
  created_by: string
  created_at: Date
  slug: string | null
}
const all = await forum.rows<Thread>('SELECT * FROM discussion_threads')
const visible = all.filter((r) => r.group_id !== G3)
const hidden = all.filter((r) => r.group_id === G3)
const ids = (rows: readonly Row[]) => rows.map((r) => r.id as string).sort()
const select = (where: Where, opts: object = {}) =>
  guardedSelect<Thread>(pool, alice, { from: 'discussion_threads', where, guard: member, ...opts })
const at = (hour: number) => new Date(Date.UTC(2026, 0, 1, hour))

t.test('every operator selects what it says, and only rows the guard shows', async (t) => {
  const cases: [string, Where, (r: Thread) => boolean][] = [
    ['plain equality', { created_by: 'alice' }, (r) => r.created_by === 'alice'],
    ['eq', { created_by: op({ eq: 'bob' }) }, (r) => r.created_by === 'bob'],
    ['eq null', { slug: op({ eq: null }) }, (r) => r.slug === null],
    ['ne', { created_by: op({ ne: 'bob' }) }, (r) => r.created_by !== 'bob'],
    ['ne null', { slug: op({ ne: null }) }, (r) => r.slug !== null],
    [
      'ne skips NULL (SQL)',
      { slug: op({ ne: 'slug-1' }) },
      (r) => r.slug !== null && r.slug !== 'slug-1',
    ],
    ['lt', { created_at: op({ lt: at(2) }) }, (r) => r.created_at < at(2)],
    ['lte', { created_at: op({ lte: at(2) }) }, (r) => r.created_at <= at(2)],
    ['gt', { created_at: op({ gt: at(2) }) }, (r) => r.created_at > at(2)],
    ['gte', { created_at: op({ gte: at(2) }) }, (r) => r.created_at >= at(2)],
    [
      'range',
      { created_at: op({ gte: at(1), lt: at(4) }) },
      (r) => r.created_at >= at(1) && r.created_at < at(4),
    ],
    ['gt on text', { title: op({ gt: 'x' }) }, (r) => r.title > 'x'],
    ['in', { title: op({ in: ['x', 'Plain', 'nope'] }) }, (r) => ['x', 'Plain'].includes(r.title)],
    ['in []', { title: op({ in: [] }) }, () => false],
    ['notIn', { title: op({ notIn: ['x', 'Plain'] }) }, (r) => !['x', 'Plain'].includes(r.title)],
    ['notIn []', { title: op({ notIn: [] }) }, () => true],
    [
      'notIn skips NULL (SQL)',
      { slug: op({ notIn: ['slug-1'] }) },
      (r) => r.slug !== null && r.slug !== 'slug-1',
    ],
    ['in on the group column', { group_id: op({ in: [G2, G3] }) }, (r) => r.group_id !== G1],
    ['notIn on the group column', { group_id: op({ notIn: [G1] }) }, (r) => r.group_id !== G1],
    ['like', { title: op({ like: likePrefix('plain') }) }, (r) => r.title.startsWith('plain')],
    [
      'ilike',
      { title: op({ ilike: likePrefix('plain') }) },
      (r) => r.title.toLowerCase().startsWith('plain'),
    ],
    [
      'ilike contains %',
      { title: op({ ilike: likeContains('0%') }) },
      (r) => r.title.includes('0%'),
    ],
    ['like contains _', { title: op({ like: likeContains('_') }) }, (r) => r.title.includes('_')],
    [
      'like contains \\',
      { title: op({ like: likeContains('\\') }) },
      (r) => r.title.includes('\\'),
    ],
    ['like raw wildcard', { title: op({ like: '5%' }) }, (r) => r.title.startsWith('5')],
    ['isNull true', { slug: op({ isNull: true }) }, (r) => r.slug === null],
    ['isNull false', { slug: op({ isNull: false }) }, (r) => r.slug !== null],
    [
      'or',
      { either: op.or({ title: 'x' }, { created_by: 'alice', slug: null }) },
      (r) => r.title === 'x' || (r.created_by === 'alice' && r.slug === null),
    ],
    [
      'or naming a hidden group',
      { either: op.or({ group_id: G3 }, { title: 'y' }) },
      (r) => r.group_id === G3 || r.title === 'y',
    ],
    ['or of the hidden group alone', { g: op.or({ group_id: G3 }) }, (r) => r.group_id === G3],
    [
      'and',
      { both: op.and({ created_by: 'bob' }, { created_at: op({ gt: at(1) }) }) },
      (r) => r.created_by === 'bob' && r.created_at > at(1),
    ],
    ['not', { other: op.not({ group_id: G1 }) }, (r) => r.group_id !== G1],
    ['not of a hidden group', { other: op.not({ group_id: G3 }) }, (r) => r.group_id !== G3],
    [
      'not of a group',
      { n: op.not({ g: op.or({ title: 'x' }, { title: 'y' }) }) },
      (r) => r.title !== 'x' && r.title !== 'y',
    ],
    [
      'a guard inside or',
      { g: op.or({ mine: isSubject('created_by') }, { title: 'z' }) },
      (r) => r.created_by === 'alice' || r.title === 'z',
    ],
    [
      'not of a guard',
      { g: op.not({ mine: isSubject('created_by') }) },
      (r) => r.created_by !== 'alice',
    ],
    [
      'nested',
      {
        g: op.or(
          { h: op.and({ title: 'x' }, { k: op.not({ created_by: 'bob' }) }) },
          { title: 'z' },
        ),
      },
      (r) => (r.title === 'x' && r.created_by !== 'bob') || r.title === 'z',
    ],
  ]
  for (const [name, where, keep] of cases) {
    const rows = await select(where)
    t.same(ids(rows), ids(visible.filter(keep)), name)
    t.notOk(
      rows.some((r) => r.group_id === G3),
      `${name}: no row of the hidden group`,
    )
    const adminRows = await guardedSelect(pool, admin, {
      from: 'discussion_threads',
      where,
      guard: member,
    })
    if (!name.includes('guard'))
      t.same(ids(adminRows), ids(all.filter(keep)), `${name}: admin sees every group`)
    t.equal(
      await guardedCount(pool, alice, { from: 'discussion_threads', where, guard: member }),
      rows.length,
      `${name}: count`,
    )
  }
  t.ok(hidden.length > 0 && visible.length > 0, 'the fixture has hidden and visible rows')
  t.same(await forum.rows('SELECT * FROM discussion_threads'), all, 'nothing written')
})

t.test('a plain object is a value, never an operator', async (t) => {
  // A request body passed as a value: {"ne": ""} must not become `<> ''`.
  const body = JSON.parse('{"title": {"ne": ""}, "id": {"in": []}}')
  t.same(await select({ title: body.title }), [], 'compared with its JSON text')
  t.same(await select({ title: JSON.parse('{"__proto__": {"ne": ""}}') }), [])
  await t.rejects(
    select({ id: body.id }),
    { code: 'KH_BAD_REQUEST', statusCode: 400 },
    'not a uuid',
  )
  const db = bindPolicies(policies, pool, alice)
  await t.rejects(db.delete('discussion_threads', { title: body.title }), { code: 'KH_NOT_FOUND' })
  t.same(await forum.rows('SELECT * FROM discussion_threads'), all, 'nothing deleted')
  t.notOk(
    isFilter({ kind: 'column', comparisons: [], wheres: [], shape: '{}' }),
    'a look-alike is not a filter',
  )
  t.same(
    await select({
      title: {
        kind: 'column',
        comparisons: [{ operator: 'ne', sql: ' <> ', value: '', bound: true }],
        wheres: [],
        shape: '{ne <> ,}',
      },
    }),
    [],
  )
})

t.test('bad filters are refused when built, with exact codes', async (t) => {
  const config = { code: 'KH_INVALID_OPTIONS', statusCode: 500 }
  const badRequest = { code: 'KH_BAD_REQUEST', statusCode: 400 }
  const cases: [string, () => unknown, { code: string; statusCode?: number }][] = [
    ['unknown operator', () => op({ nope: 1 } as never), config],
    ['an SQL-looking operator', () => op({ '= 1 OR 1=1 --': 1 } as never), config],
    ['__proto__ as an own key', () => op(JSON.parse('{"__proto__": {"gte": 1}}')), config],
    ['constructor', () => op(JSON.parse('{"constructor": 1}')), config],
    ['__proto__ literal (no own key)', () => op({ __proto__: { eq: 1 } } as never), config],
    ['empty', () => op({}), config],
    ['not an object', () => op('x' as never), config],
    ['null', () => op(null as never), config],
    ['an array', () => op([1] as never), config],
    ['a date', () => op(new Date() as never), config],
    ['a filter', () => op(op({ eq: 1 }) as never), config],
    ['a guard', () => op(member as never), config],
    ['undefined value', () => op({ eq: undefined }), config],
    ['a guard as value', () => op({ eq: member as never }), config],
    ['a filter as value', () => op({ gt: op({ eq: 1 }) as never }), config],
    ['a function', () => op({ eq: (() => 1) as never }), config],
    ['nested operator object', () => op({ gte: { lt: 1 } as never }), badRequest],
    ['lt null', () => op({ lt: null as never }), badRequest],
    ['gt an array', () => op({ gt: [1] as never }), badRequest],
    ['in not an array', () => op({ in: 'a' as never }), badRequest],
    ['in with null', () => op({ in: ['a', null] as never }), badRequest],
    ['notIn with undefined', () => op({ notIn: [undefined] as never }), badRequest],
    ['in of mixed types', () => op({ in: [1, '1'] as never }), badRequest],
    ['in of objects', () => op({ in: [{ a: 1 }] as never }), badRequest],
    ['in of arrays', () => op({ in: [[1]] as never }), badRequest],
    ['like a number', () => op({ like: 1 as never }), badRequest],
    ['isNull a string', () => op({ isNull: 'true' as never }), badRequest],
    ['or of nothing', () => op.or(), config],
    ['or of an empty where', () => op.or({}), config],
    ['or of a non-object', () => op.or('x' as never), config],
    ['or of an array', () => op.or([] as never), config],
    ['or of a filter', () => op.or(op({ eq: 1 }) as never), config],
    ['not of null', () => op.not(null as never), config],
    [
      'a bad key in a group',
      () => op.and({ 'a; DROP TABLE x': 1 }),
      { code: 'KH_INVALID_IDENTIFIER' },
    ],
    [
      '__proto__ key in a group (JSON)',
      () => op.or(JSON.parse('{"__proto__": 1, "a b": 2}')),
      { code: 'KH_INVALID_IDENTIFIER' },
    ],
    ['escapeLike of a number', () => escapeLike(1 as never), badRequest],
  ]
  for (const [name, build, code] of cases) t.throws(build, code, name)
  t.same(
    Object.keys(op.or(JSON.parse('{"__proto__": 1}')).wheres[0] as object),
    ['__proto__'],
    '__proto__ is only a (quoted) column name',
  )
  await t.rejects(
    select({ g: op.or(JSON.parse('{"__proto__": 1}')) }),
    { code: 'KH_BAD_REQUEST' },
    'no such column: 400',
  )
  const where = { created_by: 'alice' } as Record<string, unknown>
  const frozen = op.or(where)
  where.created_by = 'bob'
  where['x"; --'] = 1
  t.same(
    ids(await select({ g: frozen })),
    ids(visible.filter((r) => r.created_by === 'alice')),
    'a group copies its where',
  )
  const list = ['x']
  const filter = op({ in: list })
  list.push('y')
  t.same(
    ids(await select({ title: filter })),
    ids(visible.filter((r) => r.title === 'x')),
    'and its lists',
  )
  t.equal(likeContains('a%b_c\\d'), '%a\\%b\\_c\\\\d%')
  t.equal(likePrefix('50%'), '50\\%%')
  await t.rejects(
    select({ x: op.or({ y: undefined as never }) }),
    config,
    'undefined inside a group',
  )
  await t.rejects(select(op.or({ a: 1 }) as never), config, 'a filter is not a where')
  await t.rejects(select(member as never), config, 'nor is a guard')
})

t.test('values are parameters: injection through operator values', async (t) => {
  const hostile = ["' OR '1'='1", '"); DROP TABLE posts; --', '{x}', 'a","b', '%', '\\', '$1']
  for (const value of hostile) {
    t.same(
      await select({ title: op({ in: [value, 'x'] }) }),
      await select({ title: 'x' }),
      `in: ${value}`,
    )
    t.same(await select({ title: op({ like: escapeLike(value) }) }), [], `like: ${value}`)
    t.same(await select({ g: op.or({ title: value }) }), [], `or: ${value}`)
  }
  t.equal((await forum.rows(`SELECT to_regclass('posts') IS NOT NULL AS ok`))[0]?.ok, true)
})

t.test('orderBy on several columns, limit, offset', async (t) => {
  const order: [string, 'asc' | 'desc'][] = [
    ['created_by', 'asc'],
    ['created_at', 'desc'],
    ['id', 'asc'],
  ]
  const sorted = [...visible].sort(
    (a, b) =>
      a.created_by.localeCompare(b.created_by) ||
      b.created_at.getTime() - a.created_at.getTime() ||
      (a.id < b.id ? -1 : 1),
  )
  t.same(ids(await select({}, { orderBy: order })), ids(sorted))
  t.same(
    (await select({}, { orderBy: order })).map((r) => r.id),
    sorted.map((r) => r.id),
    'in order',
  )
  t.same(
    (await select({}, { orderBy: order, limit: 3, offset: 2 })).map((r) => r.id),
    sorted.slice(2, 5).map((r) => r.id),
  )
  t.same(
    (await select({}, { orderBy: order, offset: 6 })).map((r) => r.id),
    sorted.slice(6).map((r) => r.id),
  )
  t.same(await select({}, { orderBy: order, offset: 100 }), [])
  const bad = [-1, 1.5, NaN, Infinity, 2 ** 53, '3', null, 1n]
  for (const n of bad) {
    await t.rejects(
      select({}, { limit: n }),
      { code: 'KH_BAD_REQUEST', statusCode: 400, message: 'limit must be a non-negative integer' },
      `limit ${String(n)}`,
    )
    await t.rejects(
      select({}, { offset: n }),
      { code: 'KH_BAD_REQUEST', statusCode: 400, message: 'offset must be a non-negative integer' },
      `offset ${String(n)}`,
    )
  }
  for (const orderBy of [[], [['id', 'up']], [['id desc']], 'id; DROP', {}]) {
    await t.rejects(
      select({}, { orderBy }),
      { code: /^KH_INVALID_(OPTIONS|IDENTIFIER)$/, statusCode: 500 },
      JSON.stringify(orderBy),
    )
  }
  await t.rejects(select({}, { columns: [] }), { code: 'KH_INVALID_OPTIONS' })
})

t.test('keyset pagination: every row once, in order, for any mix of directions', async (t) => {
  const orders: [string, 'asc' | 'desc'][][] = [
    [
      ['created_at', 'desc'],
      ['id', 'desc'],
    ],
    [
      ['created_at', 'asc'],
      ['id', 'asc'],
    ],
    [
      ['created_at', 'desc'],
      ['id', 'asc'],
    ],
    [
      ['created_by', 'asc'],
      ['created_at', 'desc'],
      ['id', 'asc'],
    ],
    [
      ['created_by', 'desc'],
      ['title', 'asc'],
      ['id', 'desc'],
    ],
    [['id', 'desc']],
  ]
  for (const orderBy of orders) {
    const full = await select({}, { orderBy })
    const pages: string[] = []
    let after: Row | undefined
    for (;;) {
      const page = await select({}, { orderBy, limit: 5, ...(after ? { after } : {}) })
      pages.push(...page.map((r) => r.id))
      if (page.length < 5) break
      after = page.at(-1)
    }
    t.same(
      pages,
      full.map((r) => r.id),
      JSON.stringify(orderBy),
    )
    t.notOk(full.some((r) => r.group_id === G3))
  }
  // A cursor taken from a hidden row still yields only visible rows.
  const [first] = hidden.sort((a, b) => b.created_at.getTime() - a.created_at.getTime())
  const after = await select(
    {},
    {
      orderBy: [
        ['created_at', 'desc'],
        ['id', 'desc'],
      ],
      after: first,
    },
  )
  t.notOk(
    after.some((r) => r.group_id === G3),
    'a hidden row as cursor reveals nothing',
  )
  t.same(
    ids(after),
    ids(
      visible.filter(
        (r) =>
          r.created_at < first!.created_at ||
          (r.created_at.getTime() === first!.created_at.getTime() && r.id < first!.id),
      ),
    ),
  )
  // With a filter and offset together.
  const filtered = await select(
    { created_by: 'alice', title: op({ notIn: ['zz'] }) },
    {
      orderBy: [
        ['created_at', 'desc'],
        ['id', 'desc'],
      ],
      after: { created_at: at(5), id: 'ffffffff-ffff-4fff-bfff-ffffffffffff' },
      limit: 2,
      offset: 1,
    },
  )
  t.same(
    filtered.map((r) => r.id),
    visible
      .filter((r) => r.created_by === 'alice' && r.created_at <= at(5))
      .sort((a, b) => b.created_at.getTime() - a.created_at.getTime() || (a.id < b.id ? 1 : -1))
      .slice(1, 3)
      .map((r) => r.id),
  )
  const orderBy = [
    ['created_at', 'desc'],
    ['id', 'desc'],
  ] as const
  for (const [name, cursor] of [
    ['not an object', 'x'],
    ['an array', [at(1), G1]],
    ['null', null],
    ['a missing column', { created_at: at(1) }],
    ['a null value', { created_at: at(1), id: null }],
    ['an undefined value', { created_at: at(1), id: undefined }],
    ['a function', { created_at: at(1), id: () => 1 }],
    ['inherited values', Object.create({ created_at: at(1), id: G1 })],
  ] as const) {
    await t.rejects(
      select({}, { orderBy, after: cursor }),
      { code: 'KH_BAD_REQUEST', statusCode: 400 },
      name,
    )
  }
  await t.rejects(
    select({}, { orderBy, after: { created_at: 'not a time', id: G1 } }),
    { code: 'KH_BAD_REQUEST' },
    'a value of the wrong type: 400 from the database',
  )
  await t.rejects(
    select({}, { after: { id: G1 } }),
    { code: 'KH_INVALID_OPTIONS' },
    'after needs orderBy',
  )
})

t.test('count() on the handle: guarded, a number', async (t) => {
  const db = bindPolicies(policies, pool, alice)
  t.equal(await db.count('discussion_threads'), visible.length)
  t.equal(await db.count('discussion_threads', { group_id: G3 }), 0, 'a hidden group counts 0')
  t.equal(
    await db.count('discussion_threads', { g: op.or({ group_id: G3 }, { group_id: G1 }) }),
    visible.filter((r) => r.group_id === G1).length,
  )
  t.equal(await bindPolicies(policies, pool, admin).count('discussion_threads'), all.length)
  t.equal(await bindPolicies(policies, pool, makeCapability()).count('discussion_threads'), 0)
  await t.rejects(db.count('posts'), { code: 'KH_NO_POLICY' })
  const page = await db.select(
    'discussion_threads',
    { created_by: 'bob' },
    {
      orderBy: [
        ['created_at', 'desc'],
        ['id', 'desc'],
      ],
      limit: 2,
      offset: 1,
      after: { created_at: at(6), id: G1 },
    },
  )
  t.equal(page.length, 2, 'the handle passes offset and after')
})

t.test('operators on UPDATE and DELETE: only allowed rows change', async (t) => {
  const db = bindPolicies(policies, pool, alice)
  const client = await pool.connect()
  t.teardown(() => client.release())
  await client.query('BEGIN')
  const tx = bindPolicies(policies, client, alice)
  const early = { created_at: op({ lt: at(3) }) }
  const changed = await tx.update(
    'discussion_threads',
    early,
    { created_by: 'carol' },
    { returning: ['id', 'group_id'] },
  )
  t.same(
    ids(changed.rows),
    ids(all.filter((r) => r.group_id === G2 && r.created_at < at(3))),
    'moderates G2 only',
  )
  // Rows match, none may be changed: G1 (readable) → 403, G3 (hidden) → 404.
  await t.rejects(
    tx.update('discussion_threads', { group_id: op({ in: [G1] }) }, { created_by: 'carol' }),
    {
      code: 'KH_CAPABILITY_DENIED',
      statusCode: 403,
    },
  )
  await t.rejects(
    tx.update('discussion_threads', { g: op.or({ group_id: G3 }) }, { created_by: 'carol' }),
    {
      code: 'KH_CAPABILITY_DENIED',
      statusCode: 404,
    },
  )
  await t.rejects(
    tx.delete('discussion_threads', { g: op.not({ group_id: op({ notIn: [G3] }) }) }),
    { code: 'KH_CAPABILITY_DENIED', statusCode: 404 },
  )
  await t.rejects(tx.delete('discussion_threads', { title: op({ like: 'no such%' }) }), {
    code: 'KH_NOT_FOUND',
  })
  const deleted = await tx.delete(
    'discussion_threads',
    { g: op.or({ title: 'x' }, { title: 'z' }), created_at: op({ gte: at(0) }) },
    { returning: ['id'] },
  )
  t.same(
    ids(deleted.rows),
    ids(all.filter((r) => r.group_id === G2 && (r.title === 'x' || r.title === 'z'))),
  )
  t.ok(deleted.rows.length > 0, 'deleted some')
  await client.query('ROLLBACK')
  t.same(await forum.rows('SELECT * FROM discussion_threads'), all, 'rolled back')
  await t.rejects(
    db.update('discussion_threads', { id: op({ in: [1 as never] }) }, { created_by: 'carol' }),
    { code: 'KH_BAD_REQUEST' },
  )
  t.same(await forum.rows('SELECT * FROM discussion_threads'), all, 'nothing written on refusal')
})

t.test('one statement per shape; the shape holds the operators, never the values', async (t) => {
  const texts: string[] = []
  const names = new Set<string>()
  const recorder = {
    query: (config: { text: string; name?: string }) => {
      texts.push(config.text)
      names.add(config.name as string)
      return pool.query(config as never)
    },
  }
  const run = (where: Where) =>
    guardedSelect(recorder, alice, {
      from: 'discussion_threads',
      where,
      guard: member,
      orderBy: [
        ['created_at', 'desc'],
        ['id', 'desc'],
      ],
      limit: 10,
    })
  await run({ title: op({ in: ['a'] }), g: op.or({ created_by: 'x' }, { slug: null }) })
  await run({ title: op({ in: ['b', 'c', 'd'] }), g: op.or({ created_by: 'y' }, { slug: null }) })
  t.equal(names.size, 1, 'same operators, other values: one statement')
  await run({ title: op({ notIn: ['a'] }), g: op.or({ created_by: 'x' }, { slug: null }) })
  await run({ title: op({ in: ['a'] }), g: op.and({ created_by: 'x' }, { slug: null }) })
  await run({ title: op({ in: ['a'] }), g: op.or({ created_by: 'x' }, { slug: 'x' }) })
  await run({ title: op({ in: ['a'] }), g: op.or({ created_by: 'x', slug: null }) })
  await run({ title: op({ eq: null }) })
  await run({ title: op({ eq: 'x' }) })
  // `op.and(a, b)` and `op.or({ ...a, ...b })` are the same SQL, hence the same statement.
  t.equal(names.size, 6, 'each operator structure its own statement')
  t.equal(
    texts[0],
    'SELECT "t".* FROM "discussion_threads" AS "t" WHERE ("t"."title" = ANY ($1) AND ' +
      '("t"."created_by" = $2 OR "t"."slug" IS NULL) AND "t"."group_id" = ANY ($3::uuid[])) ' +
      'ORDER BY "t"."created_at" DESC, "t"."id" DESC LIMIT $4',
  )
  texts.length = 0
  await guardedSelect(recorder, alice, {
    from: 'discussion_threads',
    where: {
      group_id: G1,
      title: op({ ilike: likeContains('x'), ne: 'y' }),
      n: op.not({ slug: null }),
    },
    guard: member,
    orderBy: [
      ['created_at', 'desc'],
      ['id', 'asc'],
    ],
    after: { created_at: at(9), id: G1 },
    limit: 10,
    offset: 0,
  })
  t.equal(
    texts[0],
    'SELECT "t".* FROM "discussion_threads" AS "t" WHERE ("t"."group_id" = $1 AND "t"."title" <> $2 AND ' +
      '"t"."title" ILIKE $3 AND NOT ("t"."slug" IS NULL) AND ("t"."created_at" <= $4 AND ' +
      '("t"."created_at" < $4 OR ("t"."created_at" = $4 AND "t"."id" > $5))) AND ' +
      '$1 = ANY ($6::uuid[])) ORDER BY "t"."created_at" DESC, "t"."id" ASC LIMIT $7 OFFSET $8',
  )
  texts.length = 0
  await guardedCount(recorder, alice, {
    from: 'discussion_threads',
    where: { group_id: G1 },
    guard: member,
  })
  t.equal(
    texts[0],
    'SELECT count(*) AS "count" FROM "discussion_threads" AS "t" WHERE ("t"."group_id" = $1 AND $1 = ANY ($2::uuid[]))',
  )
  await guardedCount(recorder, admin, { from: 'discussion_threads', guard: member })
  t.equal(
    texts[1],
    'SELECT count(*) AS "count" FROM "discussion_threads" AS "t"',
    'admin: no WHERE',
  )
  // Keys are checked on every call: no key can forge another shape's cache entry.
  for (const key of ['a=,b', 'x{eq = ,}', 'a(or[b=,])', 'a~', 'a#1']) {
    await t.rejects(run({ [key]: 1 }), { code: 'KH_INVALID_IDENTIFIER' }, key)
  }
})

t.test('guards inside groups fold as the capability says', async (t) => {
  const adminSelect = (where: Where) =>
    guardedSelect(pool, admin, { from: 'discussion_threads', where, guard: member })
  t.same(await adminSelect({ n: op.not({ g: member }) }), [], 'admin: NOT (TRUE) is no row')
  t.same(ids(await adminSelect({ n: op.not({ g: adminOnly() }) })), [])
  t.same(ids(await select({ n: op.not({ g: adminOnly() }) })), ids(visible), 'member: NOT (FALSE)')
  t.same(
    ids(await select({ g: op.or({ a: adminOnly() }, { title: 'x' }) })),
    ids(visible.filter((r) => r.title === 'x')),
  )
})
