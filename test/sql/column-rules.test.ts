/**
 * Column rules as `definePolicies` takes them: checked, frozen, their roles checked against the
 * hierarchy, and typed by the table's columns with `definePolicies<DB>` (the `@ts-expect-error`
 * lines are the compile-time half: the project's type check fails if one stops being an error).
 */
import t from 'tap'
import { randomBytes, randomUUID } from 'node:crypto'
import { dataKeys } from '../../src/encryption/data-keys.ts'
import { and, inGroup, isSubject, or, viaParent } from '../../src/sql/guard.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, G1, G2, G3, postMember } from '../helpers/sql-forum.ts'

const member = inGroup('group_id', 'member')

t.test('columns are checked and frozen, their roles collected', async (t) => {
  const policies = definePolicies({
    groups: {
      read: member,
      columns: {
        read: { member: ['id', 'name', 'name'], moderator: ['invite_code'] },
        write: { moderator: '*' },
        hidden: ['password_hash'],
      },
    },
  })
  const columns = policies.tables.groups?.columns
  t.same(columns, {
    read: { member: ['id', 'name'], moderator: ['invite_code'] },
    write: { moderator: '*' },
    hidden: ['password_hash'],
  })
  t.ok(
    Object.isFrozen(columns) && Object.isFrozen(columns?.read) && Object.isFrozen(columns?.hidden),
  )
  t.ok(Object.isFrozen(columns?.read?.member))
  t.same([...policies.roles].sort(), ['member', 'moderator'])
  // Defining again from the frozen result (as the test-policies command does) gives the same.
  t.same(definePolicies(policies.tables).tables.groups?.columns, columns)
})

t.test('bad column rules are refused at definition, with exact codes', async (t) => {
  const bad: [string, unknown, string][] = [
    ['not an object', 'id', 'KH_INVALID_OPTIONS'],
    ['null', null, 'KH_INVALID_OPTIONS'],
    ['a list', ['id'], 'KH_INVALID_OPTIONS'],
    ['unknown key', { readable: {} }, 'KH_INVALID_OPTIONS'],
    ['read not an object', { read: ['id'] }, 'KH_INVALID_OPTIONS'],
    ['read null', { read: null }, 'KH_INVALID_OPTIONS'],
    ['write not an object', { write: '*' }, 'KH_INVALID_OPTIONS'],
    ['a role list that is no list', { read: { member: 'id' } }, 'KH_INVALID_OPTIONS'],
    ['a bad column', { read: { member: ['id; DROP'] } }, 'KH_INVALID_IDENTIFIER'],
    ['a column that is no string', { write: { member: [1] } }, 'KH_INVALID_IDENTIFIER'],
    ['a bad role', { read: { 'mem ber': ['id'] } }, 'KH_INVALID_IDENTIFIER'],
    ['hidden not a list', { hidden: 'password_hash' }, 'KH_INVALID_OPTIONS'],
    ['a bad hidden column', { hidden: ['a"b'] }, 'KH_INVALID_IDENTIFIER'],
    ['hidden without read', { hidden: ['password_hash'] }, 'KH_INVALID_OPTIONS'],
    ['hidden with read *', { read: { member: '*' }, hidden: ['h'] }, 'KH_INVALID_OPTIONS'],
    ['hidden and readable', { read: { member: ['id', 'h'] }, hidden: ['h'] }, 'KH_INVALID_OPTIONS'],
    [
      'hidden and writable',
      { read: { member: ['id'] }, write: { moderator: ['h'] }, hidden: ['h'] },
      'KH_INVALID_OPTIONS',
    ],
  ]
  for (const [name, columns, code] of bad) {
    t.throws(
      () => definePolicies({ groups: { read: member, columns } as never }),
      { code, statusCode: 500 },
      name,
    )
  }
  // `write: '*'` is no SQL `*`: a table with hidden columns may let a role write any other one.
  t.doesNotThrow(() =>
    definePolicies({
      groups: {
        read: member,
        columns: { read: { member: ['id'] }, write: { member: '*' }, hidden: ['h'] },
      },
    }),
  )
})

t.test('a role of the column rules must be in the hierarchy', async (t) => {
  const policies = definePolicies({
    groups: { read: member, columns: { read: { owner: ['id'] } } },
  })
  t.throws(
    () => bindPolicies(policies, { query: async () => ({ rows: [] }) } as never, makeCapability()),
    {
      code: 'KH_INVALID_OPTIONS',
      message: /role "owner"/,
    },
  )
})

t.test('with definePolicies<DB>, the column names are those of the table', async (t) => {
  interface DB {
    groups: { id: string; name: string; invite_code: string; password_hash: string }
    posts: { id: string; body: string }
  }
  const policies = definePolicies<DB>({
    groups: {
      read: member,
      columns: {
        read: { member: ['id', 'name'], moderator: ['invite_code'] },
        write: { moderator: '*' },
        hidden: ['password_hash'],
      },
    },
    posts: {
      read: member,
      // @ts-expect-error: posts has no column title
      columns: { read: { member: ['id', 'title'] } },
    },
  })
  definePolicies<DB>({
    // @ts-expect-error: a hidden column of groups must be a column of groups
    groups: { read: member, columns: { read: { member: ['id'] }, hidden: ['body'] } },
  })
  t.ok(policies.tables.groups)
})

t.test('guards of every shape, in guard mode on the forum', async (t) => {
  const forum = await createForum(t)
  const policies = definePolicies({
    discussion_threads: {
      // An author reads its own thread even outside its groups: that row has no role, so the
      // lowest role's columns.
      read: or(isSubject('created_by'), member),
      insert: isSubject('created_by'),
      update: isSubject('created_by'),
      columns: {
        read: { member: ['id', 'title', 'group_id'], moderator: '*' },
        write: { member: ['title', 'group_id', 'created_by'], moderator: ['slug'] },
      },
    },
    posts: {
      read: postMember,
      columns: { read: { member: ['id', 'content'], moderator: ['author'] } },
    },
    comments: {
      // No group at all: every row is at the lowest role.
      read: or(
        isSubject('author'),
        and(
          isSubject('author'),
          viaParent({
            table: 'posts',
            key: 'id',
            column: 'post_id',
            groupColumn: isSubject('author'),
          }),
        ),
      ),
      insert: isSubject('author'),
      columns: {
        read: { member: ['body'], moderator: ['author'] },
        write: { member: ['body', 'post_id', 'author'] },
      },
    },
    // Read rules only: any column may be written.
    groups: {
      read: inGroup('id', 'member'),
      update: inGroup('id', 'member'),
      columns: { read: { member: ['id', 'name'] } },
    },
  })
  const ada = makeCapability({ subject: 'ada', groups: { member: [G1], moderator: [G2] } })
  const mo = makeCapability({ subject: 'mo', groups: { moderator: [G1, G2] } })
  const th1 = await forum.thread(G1, 'one', 'ada')
  const th2 = await forum.thread(G2, 'two', 'x')
  const th3 = await forum.thread(G3, 'three', 'ada')
  const th4 = await forum.thread(G3, 'four', 'mo')
  const p1 = await forum.post(th1, 'p1', 'x')
  const p2 = await forum.post(th2, 'p2', 'x')
  await forum.comment(p1, 'c1', 'ada')
  const as = (who: typeof ada) => bindPolicies(policies, forum.pool, who)
  const keys = (rows: readonly Record<string, unknown>[], id: string) =>
    Object.keys(rows.find((r) => r.id === id) ?? {}).sort()

  const threads = await as(ada).select('discussion_threads')
  t.same(keys(threads, th1), ['group_id', 'id', 'title'], 'G1: member')
  t.same(
    keys(threads, th2),
    ['created_at', 'created_by', 'group_id', 'id', 'slug', 'title'],
    "G2: moderator, '*'",
  )
  t.same(keys(threads, th3), ['group_id', 'id', 'title'], 'G3, as author: the lowest role')
  t.same(
    keys(await as(mo).select('discussion_threads'), th4),
    ['group_id', 'id', 'title'],
    'a moderator of all its groups still reads its own thread elsewhere at the lowest role',
  )

  await t.rejects(
    as(mo).insert(
      'discussion_threads',
      { group_id: G3, title: 't', created_by: 'mo', slug: 's' },
      { chosenKeys: ['slug'] },
    ),
    { code: 'KH_CAPABILITY_DENIED' },
    'a moderator of all its groups may not set a slug in another group',
  )
  t.equal(
    (await forum.rows('SELECT 1 FROM discussion_threads WHERE group_id = $1', [G3])).length,
    2,
    'nothing written',
  )
  t.match(
    await as(ada).insert(
      'discussion_threads',
      {
        group_id: G2,
        title: 't',
        created_by: 'ada',
        slug: 'ok',
      },
      { chosenKeys: ['slug'] },
    ),
    { slug: 'ok' },
  )

  const posts = await as(ada).select('posts')
  t.same(keys(posts, p1), ['content', 'id'], 'viaParent, G1')
  t.same(keys(posts, p2), ['author', 'content', 'id'], 'viaParent, G2')
  t.same(
    (await as(ada).select('posts', { author: 'x' })).map((r) => r.id),
    [p2],
    "where on a moderator's column: G2's posts only",
  )

  const comments = await as(ada).select('comments')
  t.same(
    comments.map((r) => Object.keys(r)),
    [['body']],
    'no group: the lowest role',
  )
  t.same(
    await as(ada).select('comments', { author: 'ada' }),
    [],
    "a moderator's column of a table whose rows are in no group: no row",
  )
  await t.rejects(
    as(ada).insert('comments', { post_id: p1, author: 'ada', body: 'b', id: randomUUID() }),
    { code: 'KH_COLUMN_DENIED', column: 'id', verb: 'write' },
  )
  t.same(await as(ada).insert('comments', { post_id: p1, author: 'ada', body: 'b' }), { body: 'b' })
  t.same(
    await as(ada).insert('comments', [{ post_id: p1, author: 'ada', body: 'b' }], {
      returning: [],
    }),
    { inserted: [], refused: [], count: 1 },
  )
  await t.rejects(
    as(ada).select('posts', { author: 'x', __keyhole_column_rule: member }),
    { code: 'KH_INVALID_OPTIONS' },
    "keyhole's own where key",
  )
  t.same((await as(ada).update('groups', { id: G1 }, { name: 'renamed' })).rows, [
    { id: G1, name: 'renamed' },
  ])
  const bad: [string, () => Promise<unknown>, string][] = [
    ['values not an object', () => as(ada).insert('comments', null as never), 'KH_BAD_REQUEST'],
    [
      'returning not a list',
      () =>
        as(ada).update(
          'discussion_threads',
          { id: th1 },
          { title: 'x' },
          {
            returning: 'id' as never,
          },
        ),
      'KH_INVALID_OPTIONS',
    ],
    [
      'orderBy not a column',
      () => as(ada).select('posts', {}, { orderBy: [] }),
      'KH_INVALID_OPTIONS',
    ],
    ['where not an object', () => as(ada).select('posts', 'x' as never), 'KH_INVALID_OPTIONS'],
  ]
  for (const [name, call, code] of bad) await t.rejects(call(), { code }, name)

  // No read guard: no row is in one of the holder's groups, so only the lowest role's columns.
  const writeOnly = definePolicies({
    posts: {
      insert: postMember,
      columns: { write: { member: ['thread_id', 'content'], moderator: ['author'] } },
    },
  })
  await t.rejects(
    bindPolicies(writeOnly, forum.pool, ada).insert('posts', {
      thread_id: th2,
      content: 'c',
      author: 'ada',
    }),
    { code: 'KH_CAPABILITY_DENIED', statusCode: 404 },
  )
})

t.test('a table without column rules costs nothing: the same single statement', async (t) => {
  const forum = await createForum(t)
  const texts: string[] = []
  const recorder = {
    query: (config: { text: string }) => {
      texts.push(config.text)
      return forum.pool.query(config as never)
    },
  }
  const byId = inGroup('id', 'member')
  const policies = definePolicies({ groups: { read: byId, update: byId } })
  const alice = makeCapability({ subject: 'alice', groups: { member: [G1] } })
  const db = bindPolicies(policies, recorder as never, alice)
  await db.select('groups', { id: G1 }, { orderBy: 'name' })
  await db.update('groups', { id: G1 }, { name: 'x' })
  await guardedSelect(recorder as never, alice, {
    from: 'groups',
    where: { id: G1 },
    orderBy: 'name',
    guard: byId,
  })
  t.equal(texts.length, 3, 'one statement each')
  t.equal(texts[0], texts[2], 'exactly what guardedSelect sends')
  t.notMatch(texts.join('\n'), /__keyhole_f\d|__keyhole_column_rule/)
})

t.test(
  'with an encrypted column: checked as written, opened before the row is projected',
  async (t) => {
    const forum = await createForum(t)
    await forum.pool.query(
      'CREATE TABLE vaults (id int PRIMARY KEY, group_id uuid NOT NULL, name text NOT NULL, invite_code text)',
    )
    const policies = definePolicies({
      vaults: {
        read: member,
        insert: member,
        // The row key (id) is readable by no one: keyhole reads it to open invite_code, then drops it.
        columns: {
          read: { member: ['name'], moderator: ['invite_code'] },
          write: { member: ['id', 'group_id', 'name'], moderator: ['invite_code'] },
        },
        encrypted: ['invite_code'],
      },
    })
    const keys = dataKeys({ current: randomBytes(32) })
    const as = (who: ReturnType<typeof makeCapability>) =>
      bindPolicies(policies, forum.pool, who, { dataKeys: keys })
    const ada = makeCapability({ subject: 'ada', groups: { member: [G1], moderator: [G2] } })
    const mem = makeCapability({ subject: 'mem', groups: { member: [G1] } })
    t.same(
      await as(ada).insert(
        'vaults',
        { id: 2, group_id: G2, name: 'two', invite_code: 'secret-2' },
        { chosenKeys: ['id'] },
      ),
      { name: 'two', invite_code: 'secret-2' },
    )
    await as(ada).insert('vaults', { id: 1, group_id: G1, name: 'one' }, { chosenKeys: ['id'] })
    const [stored] = await forum.rows('SELECT invite_code FROM vaults WHERE id = 2')
    t.not(stored?.invite_code, 'secret-2', 'ciphertext in the table')
    t.same(
      (await as(ada).select('vaults', {}, { orderBy: 'name' })).map((r) => ({ ...r })),
      [{ name: 'one' }, { name: 'two', invite_code: 'secret-2' }],
    )
    await t.rejects(
      as(mem).insert(
        'vaults',
        { id: 3, group_id: G1, name: 'x', invite_code: 'y' },
        { chosenKeys: ['id'] },
      ),
      { code: 'KH_COLUMN_DENIED' },
    )
    await t.rejects(
      as(ada).insert(
        'vaults',
        { id: 3, group_id: G1, name: 'x', invite_code: 'y' },
        { chosenKeys: ['id'] },
      ),
      {
        code: 'KH_CAPABILITY_DENIED',
        statusCode: 403,
      },
    )
    t.equal((await forum.rows('SELECT 1 FROM vaults')).length, 2, 'nothing written')
  },
)
