/**
 * Parent-group hints (src/sql/parent-hints.ts): a `viaParent` INSERT by a holder of many groups
 * binds the one group its parent was last seen in, and a refusal under that narrowed array is
 * retried once with the full array before it is a denial. Each test records what reached
 * PostgreSQL: which statement (narrowed, learning, refusal) and how many groups it carried.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type pg from 'pg'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { inGroup, isSubject, and, viaParent } from '../../src/sql/guard.ts'
import {
  HINT_COLUMN,
  HINT_MIN_GROUPS,
  ParentHints,
  parentChain,
  type ParentChain,
} from '../../src/sql/parent-hints.ts'
import type { QueryConfig, Queryable } from '../../src/sql/queryable.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import {
  commentMember,
  createForum,
  G1,
  G2,
  G3,
  postMember,
  threadLink,
} from '../helpers/sql-forum.ts'
import { actAs, installStandIn } from '../helpers/sql-rls.ts'

const forum = await createForum(t)
const { pool } = forum

/** Member of G1 and G2 (the two last, the worst place for a scan) among `HINT_MIN_GROUPS` groups. */
const alice = makeCapability({
  subject: 'alice',
  groups: { member: [...Array.from({ length: HINT_MIN_GROUPS - 2 }, () => randomUUID()), G1, G2] },
})
/** Holds G3 only among her many groups: never G1 or G2. */
const eve = makeCapability({
  subject: 'eve',
  groups: { member: [...Array.from({ length: HINT_MIN_GROUPS - 1 }, () => randomUUID()), G3] },
})
const few = makeCapability({ subject: 'bob', groups: { member: [G1, G2] } })
const admin = makeCapability({ subject: 'root', admin: true })
const chain = parentChain(postMember.node) as ParentChain

interface Sent {
  readonly kind: 'narrow' | 'learn' | 'refusal' | 'plain'
  /** Group IDs in the statement's group array (binary uuid[]: 20 bytes + 20 per element). */
  readonly groups: number | undefined
}

/** A queryable on `db` that records each statement's kind and group count. */
function recording(db: Queryable = pool): { db: Queryable; sent: Sent[] } {
  const sent: Sent[] = []
  return {
    sent,
    db: {
      query(config: QueryConfig) {
        const array = config.values?.find((v) => Buffer.isBuffer(v)) as Buffer | undefined
        sent.push({
          kind: config.text.includes(HINT_COLUMN)
            ? 'learn'
            : config.text.startsWith('SELECT COALESCE')
              ? 'refusal'
              : 'plain',
          groups: array === undefined ? undefined : (array.length - 20) / 20,
        })
        return db.query(config)
      },
    },
  }
}
/** The statements' kinds, a narrowed plain statement (one group) shown as 'narrow'. */
const kinds = (sent: readonly Sent[]) =>
  sent.map((s) => (s.kind === 'plain' && s.groups === 1 ? 'narrow' : s.kind))

const posts = async (thread: string) =>
  (
    await forum.rows('SELECT content FROM posts WHERE thread_id = $1 ORDER BY content', [thread])
  ).map((r) => r.content)
const move = (thread: string, group: string) =>
  pool.query('UPDATE discussion_threads SET group_id = $2 WHERE id = $1', [thread, group])

function insertPost(
  db: Queryable,
  who: typeof alice,
  hints: ParentHints,
  thread: string,
  content: string,
) {
  return guardedInsert(db, who, {
    into: 'posts',
    values: { thread_id: thread, content, author: who.subject },
    guard: postMember,
    readGuard: postMember,
    parentHints: hints,
  })
}

t.test('a miss learns the parent group; a hit binds that one group', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  const first = recording()
  const row = await insertPost(first.db, alice, hints, thread, 'one')
  t.same(first.sent, [{ kind: 'learn', groups: HINT_MIN_GROUPS }], 'miss: the full array')
  t.notOk(HINT_COLUMN in row, 'the hint is never returned')
  t.match(row, { thread_id: thread, content: 'one', author: 'alice' })
  t.equal(hints.get(chain, thread), G1, 'learned from the admitted row')
  const second = recording()
  const again = await insertPost(second.db, alice, hints, thread, 'two')
  t.same(second.sent, [{ kind: 'plain', groups: 1 }], 'hit: one group')
  t.same(Object.keys(again).sort(), ['author', 'content', 'created_at', 'id', 'thread_id'])
  t.same(await posts(thread), ['one', 'two'])
})

t.test('a stale hint refuses, and the full array admits the row once', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  await insertPost(pool, alice, hints, thread, 'learn')
  await move(thread, G2) // alice is a member of G2 too
  const { db, sent } = recording()
  const row = await insertPost(db, alice, hints, thread, 'after the move')
  t.same(kinds(sent), ['narrow', 'learn'], 'narrowed to G1: refused; then every group')
  t.equal(sent[1]?.groups, HINT_MIN_GROUPS)
  t.equal(row.content, 'after the move')
  t.same(await posts(thread), ['after the move', 'learn'], 'written once')
  t.equal(hints.get(chain, thread), G2, 'the hint follows the parent')
})

t.test('a stale hint for a parent moved out of reach is a typed denial', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  await insertPost(pool, alice, hints, thread, 'learn')
  await move(thread, G3)
  const { db, sent } = recording()
  await t.rejects(insertPost(db, alice, hints, thread, 'nope'), {
    code: 'KH_CAPABILITY_DENIED',
    statusCode: 404,
  })
  t.same(kinds(sent), ['narrow', 'learn', 'refusal'])
  t.same(await posts(thread), ['learn'], 'nothing written')
  t.equal(hints.get(chain, thread), undefined, 'forgotten')
  // A holder of G3 can still read the thread: 403 for her, through the same path.
  const readable = await forum.thread(G1, 'by alice', 'alice')
  await insertPost(pool, alice, hints, readable, 'learn')
  await move(readable, G3)
  await t.rejects(
    guardedInsert(pool, alice, {
      into: 'posts',
      values: { thread_id: readable, content: 'x', author: 'alice' },
      guard: postMember,
      readGuard: viaParent({ ...threadLink, groupColumn: isSubject('created_by') }),
      parentHints: hints,
    }),
    { code: 'KH_CAPABILITY_DENIED', statusCode: 403 },
    'the read guard decides 403 as before',
  )
})

t.test('a hint outside the holder’s groups is never sent: the full array decides', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  await insertPost(pool, alice, hints, thread, 'by alice')
  const { db, sent } = recording()
  await t.rejects(insertPost(db, eve, hints, thread, 'by eve'), {
    code: 'KH_CAPABILITY_DENIED',
    statusCode: 404,
  })
  t.same(sent, [
    { kind: 'learn', groups: HINT_MIN_GROUPS },
    { kind: 'refusal', groups: HINT_MIN_GROUPS },
  ])
  t.equal(hints.get(chain, thread), G1, 'a refusal learns nothing and keeps the hint')
  const several = recording()
  const result = await guardedInsert(several.db, eve, {
    into: 'posts',
    values: ['one', 'two'].map((content) => ({ thread_id: thread, content, author: 'eve' })),
    guard: postMember,
    parentHints: hints,
  })
  t.same(result, { inserted: [], refused: [0, 1], count: 0 }, 'several rows: refused as before')
  t.same(several.sent, [{ kind: 'learn', groups: HINT_MIN_GROUPS }], 'with the full array')
  t.same(await posts(thread), ['by alice'])
})

t.test('no hints below the threshold, for an admin, or with another guard', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1, 'by alice', 'alice')
  const cases: [string, typeof alice, Parameters<typeof guardedInsert>[2]['guard']][] = [
    [`${few.binding('member').groups.length} groups`, few, postMember],
    ['an admin', admin, postMember],
    ['a parent guard inside and()', alice, and(postMember, isSubject('author'))],
    [
      'a parent guard that is not a group check',
      alice,
      viaParent({ ...threadLink, groupColumn: isSubject('created_by') }),
    ],
  ]
  for (const [name, who, guard] of cases) {
    const { db, sent } = recording()
    const rows = [1, 2].map((i) => ({
      thread_id: thread,
      content: `${name} ${i}`,
      author: 'alice',
    }))
    await guardedInsert(db, who, { into: 'posts', values: rows[0]!, guard, parentHints: hints })
    await guardedInsert(db, who, { into: 'posts', values: rows, guard, parentHints: hints })
    t.notOk(
      sent.some((s) => s.kind === 'learn'),
      `${name}: no learning statement`,
    )
  }
  t.equal(hints.size, 0, 'nothing learned')
  t.same(parentChain(inGroup('group_id', 'member').node), undefined)
})

t.test('column rules’ flags never share a narrowed array', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  const { db, sent } = recording()
  for (const content of ['a', 'b']) {
    await guardedInsert(db, alice, {
      into: 'posts',
      values: { thread_id: thread, content, author: 'alice' },
      guard: postMember,
      view: { flags: [postMember], project: (row) => row },
      parentHints: hints,
    })
  }
  t.same(kinds(sent), ['plain', 'plain'])
  t.equal(sent[1]?.groups, HINT_MIN_GROUPS)
})

t.test('nested parents: a comment hinted by its post’s thread group', async (t) => {
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  const post = await forum.post(thread)
  const comment = (body: string, db: Queryable = pool) =>
    guardedInsert(db, alice, {
      into: 'comments',
      values: { post_id: post, body, author: 'alice' },
      guard: commentMember,
      parentHints: hints,
    })
  await comment('first')
  const nested = parentChain(commentMember.node) as ParentChain
  t.equal(hints.get(nested, post), G1)
  t.equal(hints.get(chain, post), undefined, 'hints of one chain never answer for another')
  const { db, sent } = recording()
  await comment('second', db)
  await move(thread, G2)
  await comment('third', db)
  t.same(kinds(sent), ['narrow', 'narrow', 'learn'])
  t.equal(hints.get(nested, post), G2)
  t.equal(
    (await forum.rows('SELECT count(*)::int AS n FROM comments WHERE post_id = $1', [post]))[0]?.n,
    3,
  )
})

t.test('several rows: partial inserts survive a stale hint, atomic ones too', async (t) => {
  const hints = new ParentHints()
  const [a, b, c] = [await forum.thread(G1), await forum.thread(G2), await forum.thread(G1)]
  const rows = (tag: string) =>
    [a, b, c].map((thread) => ({ thread_id: thread, content: tag, author: 'alice' }))
  const insert = (db: Queryable, tag: string, atomic?: boolean) =>
    guardedInsert(db, alice, {
      into: 'posts',
      values: rows(tag),
      guard: postMember,
      readGuard: postMember,
      atomic,
      parentHints: hints,
    })
  const first = recording()
  const learned = await insert(first.db, 'learn')
  t.same(kinds(first.sent), ['learn'])
  t.equal(learned.count, 3)
  t.notOk(
    learned.inserted.some((r) => HINT_COLUMN in r),
    'the hint is never returned',
  )
  t.same([hints.get(chain, a), hints.get(chain, b), hints.get(chain, c)], [G1, G2, G1])
  const hit = recording()
  t.match(await insert(hit.db, 'hit'), { count: 3, refused: [] })
  t.same(hit.sent, [{ kind: 'plain', groups: 2 }], 'narrowed to the hinted groups')
  // b moves out of reach, c to alice's other group: the narrowed statement refuses both and
  // writes nothing; the full array then inserts a and c and refuses b, as without hints.
  await move(b, G3)
  await move(c, G2)
  const stale = recording()
  const partial = await insert(stale.db, 'stale')
  t.same(
    stale.sent.map((s) => s.groups),
    [2, HINT_MIN_GROUPS],
  )
  t.same(partial.refused, [1])
  t.same(
    partial.inserted.map((r) => r.thread_id),
    [a, c],
  )
  t.same(await posts(b), ['hit', 'learn'], 'nothing written for b')
  t.same(await posts(c), ['hit', 'learn', 'stale'], 'c written once')
  t.same([hints.get(chain, a), hints.get(chain, b), hints.get(chain, c)], [G1, undefined, G2])
  const atomic = recording()
  await t.rejects(insert(atomic.db, 'atomic', true), {
    code: 'KH_CAPABILITY_DENIED',
    statusCode: 404,
  })
  t.same(await posts(a), ['hit', 'learn', 'stale'], 'atomic: nothing written')
  // Without a RETURNING list the rows still go in; nothing is learned from them.
  const quiet = new ParentHints()
  await guardedInsert(pool, alice, {
    into: 'posts',
    values: rows('quiet'),
    guard: postMember,
    returning: [],
    parentHints: quiet,
  })
  t.equal(quiet.size, 0)
  t.same(await posts(a), ['hit', 'learn', 'quiet', 'stale'])
})

t.test('the hints are a bounded least-recently-used map', async (t) => {
  const hints = new ParentHints(2)
  const [x, y, z] = [randomUUID(), randomUUID(), randomUUID()]
  hints.learn(chain, x, G1)
  hints.learn(chain, y, G2)
  t.equal(hints.get(chain, x), G1, 'x is now the most recently used')
  hints.learn(chain, z, G3)
  t.equal(hints.size, 2)
  t.same([hints.get(chain, x), hints.get(chain, y), hints.get(chain, z)], [G1, undefined, G3])
  hints.learn(chain, 7, 12) // integer keys and groups
  t.equal(hints.get(chain, 7), '12')
  t.equal(hints.get(chain, '7'), undefined, 'a number and a string key are different parents')
  hints.learn(chain, 8n, 13n)
  t.equal(hints.get(chain, 8n), '13')
  const never: [string, unknown][] = [
    ['null', null],
    ['an object', { id: 1 }],
    ['a fraction', 1.5],
    ['an unsafe integer', 2 ** 60],
    ['a long text', 'x'.repeat(201)],
  ]
  for (const [name, key] of never) {
    hints.learn(chain, key, G1)
    t.equal(hints.get(chain, key), undefined, `${name}: never hinted`)
    hints.forget(chain, key)
  }
  const groups: [string, unknown][] = [
    ['a NULL group', null],
    ['a fraction', 1.5],
    ['an unsafe integer (its digits are not the group’s)', 2 ** 60],
  ]
  for (const [name, group] of groups) {
    const key = randomUUID()
    hints.learn(chain, key, group)
    t.equal(hints.get(chain, key), undefined, `${name} is not learned`)
  }
  // The chain does not know the parent key's type: keys are kept as written, so a text key
  // differing in case is another parent, and a UUID in upper case a miss learned on its own.
  const upper = randomUUID().toUpperCase()
  hints.learn(chain, upper, G2)
  t.equal(hints.get(chain, upper), G2)
  t.equal(hints.get(chain, upper.toLowerCase()), undefined)
})

t.test("'rls' mode: the policies still decide", async (t) => {
  const rt = await installStandIn(pool, forum.prefix)
  await pool.query(`
    ALTER TABLE discussion_threads ENABLE ROW LEVEL SECURITY;
    ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
    CREATE POLICY member ON discussion_threads
      USING (group_id = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]));
    CREATE POLICY member ON posts
      USING (EXISTS (SELECT 1 FROM discussion_threads AS p1 WHERE p1.id = thread_id))
      WITH CHECK (EXISTS (SELECT 1 FROM discussion_threads AS p1 WHERE p1.id = thread_id))`)
  t.teardown(() =>
    pool.query(`DROP POLICY member ON posts; DROP POLICY member ON discussion_threads;
      ALTER TABLE posts DISABLE ROW LEVEL SECURITY;
      ALTER TABLE discussion_threads DISABLE ROW LEVEL SECURITY`),
  )
  const hints = new ParentHints()
  const thread = await forum.thread(G1)
  /** One transaction as the runtime role, the database's capability set to `database`'s. */
  const inTransaction = async <T>(
    database: typeof alice,
    work: (db: Queryable) => Promise<T>,
  ): Promise<T> => {
    const client: pg.PoolClient = await pool.connect()
    try {
      await client.query('BEGIN')
      await actAs(client, rt, database)
      return await work(client)
    } finally {
      await client.query('ROLLBACK')
      client.release()
    }
  }
  // The hint outlives the rolled-back post: it says where the parent thread is.
  await inTransaction(alice, (db) => insertPost(db, alice, hints, thread, 'learn'))
  t.equal(hints.get(chain, thread), G1)
  await move(thread, G2)
  const { row, sent } = await inTransaction(alice, async (db) => {
    const recorder = recording(db)
    const row = await insertPost(recorder.db, alice, hints, thread, 'under RLS')
    return { row, sent: recorder.sent }
  })
  t.same(kinds(sent), ['narrow', 'learn'], 'the stale hint retried under the policies')
  t.equal(row.content, 'under RLS')
  // The guard admits (the handle's capability holds G2) but the database's capability does not:
  // the policy refuses the row, hint or no hint.
  const narrowDb = makeCapability({ subject: 'alice', groups: { member: [G1] } })
  await t.rejects(
    inTransaction(narrowDb, (db) => insertPost(db, alice, hints, thread, 'policy says no')),
    { code: 'KH_CAPABILITY_DENIED', statusCode: 404 },
  )
  t.same(await posts(thread), [], 'every transaction rolled back')
})
