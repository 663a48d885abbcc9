import t from 'tap'
import {
  assertTableName,
  describeInput,
  quoteIdentifier,
  quoteTable,
} from '../../src/sql/identifier.ts'
import { and, inGroup, isSubject, or, viaParent } from '../../src/sql/guard.ts'

t.test('good identifiers are double-quoted, case kept', async (t) => {
  t.equal(quoteIdentifier('group_id', 'column'), '"group_id"')
  t.equal(quoteIdentifier('_A1', 'column'), '"_A1"')
  t.same(quoteTable('forum.posts'), {
    name: 'forum.posts',
    sql: '"forum"."posts"',
    relation: '"posts"',
  })
  t.same(quoteTable('posts'), { name: 'posts', sql: '"posts"', relation: '"posts"' })
})

const bad = [
  '',
  '1abc',
  'a b',
  'a"b',
  "a'b",
  'posts; DROP TABLE posts',
  'a-b',
  'é',
  'a\u0000b',
  'x'.repeat(64),
  'a.b.c',
  '.a',
  'a.',
  42,
  null,
  undefined,
]

t.test(
  'anything else is refused at build time, naming the kind, never echoing long input',
  async (t) => {
    for (const name of bad) {
      t.throws(
        () => quoteIdentifier(name, 'column'),
        { code: 'KH_INVALID_IDENTIFIER', statusCode: 500, message: /^Invalid column name/ },
        String(name),
      )
      t.throws(
        () => quoteTable(name),
        { code: 'KH_INVALID_IDENTIFIER', message: /^Invalid table name/ },
        String(name),
      )
      t.throws(() => inGroup(name as string, 'member'), { code: 'KH_INVALID_IDENTIFIER' })
      t.throws(() => isSubject(name as string), { code: 'KH_INVALID_IDENTIFIER' })
    }
    t.throws(() => inGroup('group_id', "member') OR true --"), {
      code: 'KH_INVALID_IDENTIFIER',
      message: /^Invalid role name/,
    })
    const long = 'x'.repeat(1000) + '"; DROP'
    t.throws(() => quoteTable(long), { message: /^Invalid table name "x{32}…"/ })
    t.equal(describeInput('a\u0000"b'), '"a\\u0000\\"b"')
    t.equal(describeInput(null), 'object')
  },
)

t.test('guard misuse is refused when the guard is built', async (t) => {
  const link = {
    table: 'discussion_threads',
    key: 'id',
    column: 'thread_id',
    groupColumn: 'group_id',
  }
  t.throws(() => viaParent(link), { code: 'KH_INVALID_OPTIONS', message: /needs a role/ })
  t.throws(() => viaParent({ ...link, groupColumn: inGroup('group_id', 'member') }, 'member'), {
    code: 'KH_INVALID_OPTIONS',
  })
  t.throws(() => viaParent(null as never, 'member'), { code: 'KH_INVALID_OPTIONS' })
  t.throws(() => viaParent({ ...link, table: 'x;y' }, 'member'), { code: 'KH_INVALID_IDENTIFIER' })
  t.throws(() => viaParent({ ...link, key: 'i d' }, 'member'), { code: 'KH_INVALID_IDENTIFIER' })
  t.throws(() => and(), { code: 'KH_INVALID_OPTIONS' })
  t.throws(() => or('x' as never), { code: 'KH_INVALID_OPTIONS' })
  t.ok(Object.isFrozen(inGroup('group_id', 'member')))
  t.ok(viaParent({ ...link, groupColumn: isSubject('created_by') }))
})

t.test('assertTableName accepts exactly what quoteTable accepts', async (t) => {
  const part63 = `a${'b'.repeat(62)}`
  const names: unknown[] = [
    ...bad,
    'posts',
    'forum.posts',
    '_x.y_1',
    part63,
    `${part63}b`,
    `${part63}.${part63}`,
    'a.b.c',
    'a.',
    '.a',
    'a..b',
    'a\n',
    'a.b\n',
    'é',
    '',
  ]
  for (const name of names) {
    let quoted = true
    try {
      quoteTable(name)
    } catch {
      quoted = false
    }
    if (quoted) t.doesNotThrow(() => assertTableName(name), String(name))
    else {
      t.throws(() => assertTableName(name), { code: 'KH_INVALID_IDENTIFIER' }, String(name))
    }
  }
})
