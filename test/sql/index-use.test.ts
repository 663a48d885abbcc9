import t from 'tap'
import type pg from 'pg'
import { guardedDelete } from '../../src/sql/guarded-delete.ts'
import { likeContains, op } from '../../src/sql/filter.ts'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { renderPolicySql } from '../../src/sql/render-policy-sql.ts'
import type { Queryable, QueryConfig } from '../../src/sql/queryable.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { createForum, member, moderator, postMember } from '../helpers/sql-forum.ts'
import { actAs, installStandIn } from '../helpers/sql-rls.ts'

t.test('guarded SELECT (filtered, paged too) and DELETE keep the group index', async (t) => {
  const forum = await createForum(t)
  const { pool } = forum
  await pool.query(`
    INSERT INTO groups (id, name) SELECT ('00000000-0000-4000-9000-' || lpad(g::text, 12, '0'))::uuid, 'g' || g
      FROM generate_series(1, 200) g;
    INSERT INTO discussion_threads (group_id, title, created_by)
      SELECT ('00000000-0000-4000-9000-' || lpad((1 + i % 200)::text, 12, '0'))::uuid, 't' || i, 'u' || (i % 7)
      FROM generate_series(1, 20000) i;
    ANALYZE`)
  const groups = ['00000000-0000-4000-9000-000000000001', '00000000-0000-4000-9000-000000000002']
  const cap = makeCapability({ groups: { moderator: groups } })
  const client = await pool.connect()
  t.teardown(() => client.release())
  await client.query('SET plan_cache_mode = force_generic_plan')
  const texts: string[] = []
  const recorder: Queryable = {
    query: (config: QueryConfig) => {
      texts.push(config.text)
      return client.query(config as pg.QueryConfig)
    },
  }
  for (let i = 0; i < 12; i++) {
    const rows = await guardedSelect(recorder, cap, {
      from: 'discussion_threads',
      where: { created_by: 'u1' },
      guard: member,
    })
    t.ok(rows.length > 0)
  }
  await client.query('BEGIN')
  for (let i = 0; i < 12; i++) {
    await guardedDelete(recorder, cap, {
      from: 'discussion_threads',
      where: { created_by: `u${i % 7}` },
      guard: moderator,
    }).catch((e: { code: string }) => t.match(e.code, /^KH_(NOT_FOUND|CAPABILITY_DENIED)$/))
  }
  await client.query('ROLLBACK')
  const [select, del] = [texts[0]!, texts.at(-1)!]
  // A filtered, ordered, paginated select (keyset after a cursor, limit and offset) keeps it too:
  // the filters and the cursor are ANDed beside the guard, never around it.
  const [cursor] = await guardedSelect(recorder, cap, {
    from: 'discussion_threads',
    guard: member,
    orderBy: [
      ['created_at', 'desc'],
      ['id', 'desc'],
    ],
    limit: 1,
  })
  await guardedSelect(recorder, cap, {
    from: 'discussion_threads',
    where: {
      created_by: op({ in: ['u1', 'u2', 'u3'] }),
      title: op({ ilike: likeContains('1') }),
      either: op.or({ slug: null }, { created_by: op({ ne: 'u0' }) }),
      n: op.not({ created_by: 'u4' }),
    },
    guard: member,
    orderBy: [
      ['created_at', 'desc'],
      ['id', 'asc'],
    ],
    after: cursor,
    limit: 20,
    offset: 0,
  })
  const paged = texts.at(-1)!
  t.match(paged, /ORDER BY .* LIMIT \$\d+ OFFSET \$\d+$/)
  const generic = (await client.query(`EXPLAIN (GENERIC_PLAN) ${paged}`)).rows
    .map((r) => r['QUERY PLAN'])
    .join('\n')
  t.match(
    generic,
    /Index (Only )?Scan.*discussion_threads_group_id_idx|Bitmap Index Scan on discussion_threads_group_id_idx/,
    'the filtered, ordered, paginated select uses the group index',
  )
  t.notMatch(generic, /Seq Scan on discussion_threads/, 'no sequential scan')
  t.comment(generic)
  for (const [name, text] of [
    ['select', select],
    ['delete', del],
  ] as const) {
    await client.query(`PREPARE kh_${name} AS ${text}`)
    const args =
      text.indexOf('$2') < 0
        ? "('u1')"
        : text.indexOf('$1::uuid[]') >= 0
          ? `('{${groups}}', 'u1')`
          : `('u1', '{${groups}}')`
    await client.query('BEGIN')
    for (let i = 0; i < 12; i++) await client.query(`EXECUTE kh_${name} ${args}`)
    const plan = (await client.query(`EXPLAIN EXECUTE kh_${name} ${args}`)).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n')
    await client.query('ROLLBACK')
    t.match(plan, /\$\d/, `${name}: the plan is generic (parameters, not values)`)
    t.match(
      plan,
      /Index (Only )?Scan.*discussion_threads_group_id_idx|Bitmap Index Scan on discussion_threads_group_id_idx/,
      `${name} uses the group index`,
    )
    // The only sequential scan allowed is the failure-path count, under a one-time filter.
    const scans = plan.split('\n').filter((l) => /Seq Scan on discussion_threads/.test(l))
    t.ok(
      scans.length <= (name === 'delete' ? 1 : 0),
      `${name}: no sequential scan on the guarded access`,
    )
    if (name === 'delete')
      t.match(plan, /One-Time Filter: \(\(?\$?\w*\.?affected\)? = 0\)|One-Time Filter/)
    t.comment(plan)
  }
})

t.test(
  'a viaParent guard under row-level security finds the parent by its primary key',
  async (t) => {
    // The values are typed through a CASE that the planner folds to the bare parameter: a COALESCE
    // (what keyhole rendered before) was not known to be leakproof, so under the parent table's
    // policy the key comparison could not become an index condition, and the parent was found by a
    // scan of every row of the holder's groups.
    const forum = await createForum(t)
    const { pool } = forum
    const rt = await installStandIn(pool, forum.prefix)
    await pool.query(`
    INSERT INTO groups (id, name) SELECT ('00000000-0000-4000-9000-' || lpad(g::text, 12, '0'))::uuid, 'g' || g
      FROM generate_series(1, 200) g;
    INSERT INTO discussion_threads (group_id, title, created_by)
      SELECT ('00000000-0000-4000-9000-' || lpad((1 + i % 200)::text, 12, '0'))::uuid, 't' || i, 'u'
      FROM generate_series(1, 20000) i;
    ANALYZE;
    ALTER TABLE discussion_threads ENABLE ROW LEVEL SECURITY;
    CREATE POLICY member ON discussion_threads
      USING (group_id = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]))`)
    const groups = Array.from(
      { length: 100 },
      (_, g) => `00000000-0000-4000-9000-${String(g + 1).padStart(12, '0')}`,
    )
    const cap = makeCapability({ groups: { member: groups } })
    const [parent] = await forum.rows<{ id: string }>(
      'SELECT id FROM discussion_threads WHERE group_id = $1 LIMIT 1',
      [groups[0]],
    )
    const thread = parent!.id
    const client = await pool.connect()
    t.teardown(() => client.release())
    await client.query('BEGIN')
    await actAs(client, rt, cap)
    let text = ''
    const recorder: Queryable = {
      query: (config: QueryConfig) => {
        text = config.text
        return client.query(config as pg.QueryConfig)
      },
    }
    const post = await guardedInsert(recorder, cap, {
      into: 'posts',
      values: { thread_id: thread, content: 'hello', author: 'u' },
      guard: postMember,
    })
    t.equal(post.thread_id, thread, 'the post is written')
    const plan = (await client.query(`EXPLAIN (GENERIC_PLAN) ${text}`)).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n')
    await client.query('ROLLBACK')
    t.match(plan, /Index (Only )?Scan using discussion_threads_pkey on discussion_threads/)
    t.match(plan, /Index Cond: \(id = \$1\)/, 'the key is an index condition on the bare parameter')
    t.notMatch(plan, /COALESCE/)
    t.notMatch(plan, /Bitmap Heap Scan on discussion_threads|Seq Scan on discussion_threads/)
    t.comment(plan)
  },
)

t.test(
  "a generated policy converts the holder's group IDs once per statement, not once per row",
  async (t) => {
    // keyhole.group_ids returns text[]; the cast to the column's array type is inside the policy's
    // sub-select, so its InitPlan hands the filter a uuid[]. Cast outside (what keyhole rendered
    // before), `((InitPlan 1).col1)::uuid[]` was evaluated for every row the policy checked: every
    // ID parsed again per row.
    const forum = await createForum(t)
    const { pool } = forum
    const rt = await installStandIn(pool, forum.prefix)
    const policies = definePolicies({ discussion_threads: { read: member } })
    await pool.query(renderPolicySql(policies, { groupIdType: 'uuid', role: rt }))
    const groups = Array.from(
      { length: 10 },
      (_, g) => `00000000-0000-4000-9000-${String(g + 1).padStart(12, '0')}`,
    )
    const cap = makeCapability({ groups: { member: groups } })
    const client = await pool.connect()
    t.teardown(() => client.release())
    await client.query('BEGIN')
    await actAs(client, rt, cap)
    const { rows } = await client.query(
      'EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM discussion_threads WHERE created_by = $1',
      ['u1'],
    )
    await client.query('ROLLBACK')
    const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n')
    t.match(
      plan,
      /Output: \(keyhole\.group_ids\('member'::text\)\)::uuid\[\]/,
      'the InitPlan casts',
    )
    t.match(plan, /group_id = ANY \(\(InitPlan 1\)\.col1\)/, 'the filter reads its uuid[] as is')
    t.notMatch(plan, /\(InitPlan \d+\)\.col1\)::uuid\[\]/, 'no cast per row')
    t.comment(plan)
  },
)
