import t from 'tap'
import fc from 'fast-check'
import { and, isSubject, or, adminOnly } from '../../src/sql/guard.ts'
import { guardedDelete } from '../../src/sql/guarded-delete.ts'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import { compilePolicyStatements } from '../../src/sql/policy-statements.ts'
import { policyStatementsText, renderPolicySql } from '../../src/sql/render-policy-sql.ts'
import { sql, type Sql } from '../../src/sql/sql-tag.ts'
import { guarded as kyselyGuard, kysely } from '../../plugins/kysely.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { actAs, installStandIn } from '../helpers/sql-rls.ts'
import {
  authorOrModerator,
  commentMember,
  createForum,
  G1,
  G2,
  G3,
  GROUPS,
  member,
  moderator,
  postMember,
  postModerator,
} from '../helpers/sql-forum.ts'

const policies = definePolicies({
  discussion_threads: {
    read: member,
    insert: member,
    update: authorOrModerator,
    delete: moderator,
  },
  posts: { read: postMember, insert: postMember, delete: postModerator },
  // Write guards imply the read guard: under RLS an UPDATE or DELETE also needs the SELECT policy.
  comments: {
    read: commentMember,
    insert: and(commentMember, isSubject('author')),
    delete: and(commentMember, or(isSubject('author'), adminOnly())),
  },
})

/** Your own SQL on each table, its WHERE the guard fragment (identifiers cannot be parameters). */
const fragmentQuery = {
  discussion_threads: (guard: Sql) => sql`SELECT x.id FROM discussion_threads x WHERE ${guard}`,
  posts: (guard: Sql) => sql`SELECT x.id FROM posts x WHERE ${guard}`,
  comments: (guard: Sql) => sql`SELECT x.id FROM comments x WHERE ${guard}`,
}

t.test('the important clauses', async (t) => {
  const sql = renderPolicySql(policies, { groupIdType: 'uuid', role: 'app_runtime' })
  t.match(sql, 'ALTER TABLE "discussion_threads" ENABLE ROW LEVEL SECURITY;')
  t.match(sql, 'ALTER TABLE "discussion_threads" FORCE ROW LEVEL SECURITY;')
  t.match(sql, 'DROP POLICY IF EXISTS keyhole_select ON "discussion_threads";')
  t.match(
    sql,
    `CREATE POLICY keyhole_select ON "discussion_threads" AS PERMISSIVE FOR SELECT TO "app_runtime" USING (("discussion_threads"."group_id" = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())));`,
  )
  t.match(sql, /FOR INSERT TO "app_runtime" WITH CHECK \(/)
  t.match(
    sql,
    /keyhole_update ON "discussion_threads" AS PERMISSIVE FOR UPDATE TO "app_runtime" USING \((.+)\) WITH CHECK \(\1\);/,
  )
  t.match(sql, `"discussion_threads"."created_by"::text = (SELECT keyhole.subject())`)
  // The parent's SELECT policy says what the guard says of the parent: the lookup alone, since
  // PostgreSQL applies that policy inside this one (one capability check fewer per statement).
  t.match(
    sql,
    `keyhole_select ON "posts" AS PERMISSIVE FOR SELECT TO "app_runtime" USING (EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE "p1"."id" = "posts"."thread_id"));`,
  )
  t.match(
    sql,
    `keyhole_select ON "comments" AS PERMISSIVE FOR SELECT TO "app_runtime" USING (EXISTS (SELECT 1 FROM "posts" AS "p1" WHERE "p1"."id" = "comments"."post_id"));`,
  )
  // A guard that says more than the parent's SELECT policy (another role) keeps its condition.
  t.match(
    sql,
    `keyhole_delete ON "posts" AS PERMISSIVE FOR DELETE TO "app_runtime" USING (EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE ("p1"."id" = "posts"."thread_id" AND ("p1"."group_id" = ANY ((SELECT keyhole.group_ids('moderator')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())))));`,
  )
  // So does one whose parent's SELECT policy also admits a system grant, or is not declared.
  for (const [name, tables] of [
    [
      'a system read on the parent',
      { discussion_threads: { read: member, system: ['read'] }, posts: { read: postMember } },
    ],
    ['no policy for the parent', { posts: { read: postMember } }],
    [
      'another guard on the parent',
      { discussion_threads: { read: moderator }, posts: { read: postMember } },
    ],
  ] as const) {
    t.match(
      renderPolicySql(definePolicies(tables as never), { groupIdType: 'uuid', role: 'rt' }),
      `USING (EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE ("p1"."id" = "posts"."thread_id" AND ("p1"."group_id" = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())))));`,
      name,
    )
  }
  t.match(
    sql,
    'DROP POLICY IF EXISTS keyhole_update ON "posts";',
    'undeclared operations lose any old policy',
  )
  t.notMatch(sql, /keyhole_update ON "posts" AS/, 'and get none: RLS refuses them')
  t.notMatch(sql, /PUBLIC/)
  t.match(renderPolicySql(policies, { groupIdType: 'bigint', role: 'rt' }), '::bigint[]')
  t.match(
    renderPolicySql(definePolicies({ 'forum.x': { read: adminOnly() } }), {
      groupIdType: 'text',
      role: 'rt',
    }),
    'ALTER TABLE "forum"."x" ENABLE',
  )
  for (const [name, options] of [
    ['groupIdType', { groupIdType: 'uuid[]', role: 'rt' }],
    ['missing options', undefined],
  ] as const) {
    t.throws(
      () => renderPolicySql(policies, options as never),
      { code: 'KH_INVALID_OPTIONS' },
      name,
    )
  }
  for (const role of ['public; DROP', '', 'a"b']) {
    t.throws(
      () => renderPolicySql(policies, { groupIdType: 'uuid', role }),
      { code: 'KH_INVALID_IDENTIFIER' },
      role,
    )
  }
})

t.test('the statements are structured once; the text is only their rendering', async (t) => {
  const options = { groupIdType: 'uuid', role: 'app_runtime' } as const
  const statements = compilePolicyStatements(policies, options)
  const posts = statements.filter((s) => s.table === '"posts"')
  t.same(
    posts.map((s) => (s.kind === 'create-policy' || s.kind === 'drop-policy' ? s.name : s.kind)),
    [
      'enable-rls',
      'force-rls',
      'keyhole_select',
      'keyhole_select',
      'keyhole_insert',
      'keyhole_insert',
      'keyhole_update',
      'keyhole_delete',
      'keyhole_delete',
    ],
    'per table: RLS enabled and forced, every policy dropped, the declared ones created',
  )
  const created = statements.flatMap((s) => (s.kind === 'create-policy' ? [s] : []))
  t.same(
    created
      .filter((s) => s.table === '"discussion_threads"')
      .map((s) => [s.command, s.using !== undefined, s.withCheck !== undefined]),
    [
      ['SELECT', true, false],
      ['INSERT', false, true],
      ['UPDATE', true, true],
      ['DELETE', true, false],
    ],
    'USING for the rows a command reads, WITH CHECK for the rows it writes',
  )
  for (const s of created) {
    t.equal(s.role, '"app_runtime"')
    const clauses = [
      ...(s.using === undefined ? [] : [`USING (${s.using})`]),
      ...(s.withCheck === undefined ? [] : [`WITH CHECK (${s.withCheck})`]),
    ]
    t.equal(
      s.sql,
      `CREATE POLICY ${s.name} ON ${s.table} AS PERMISSIVE FOR ${s.command} TO ${s.role} ${clauses.join(' ')}`,
    )
  }
  t.equal(policyStatementsText(statements), renderPolicySql(policies, options))
  t.equal(policyStatementsText([]), '\n', 'no tables: an empty script')
})

t.test(
  'applied to the fixture, the policies admit and refuse the same rows as the statement guards',
  async (t) => {
    const forum = await createForum(t)
    const { pool } = forum
    const rt = await installStandIn(pool, forum.prefix)
    await pool.query(renderPolicySql(policies, { groupIdType: 'uuid', role: rt }))
    await pool.query(renderPolicySql(policies, { groupIdType: 'uuid', role: rt }))
    const threads: string[] = []
    const posts: string[] = []
    for (const g of GROUPS) {
      for (const author of ['alice', 'bob']) {
        const th = await forum.thread(g, `${author} in ${g.slice(-1)}`, author)
        threads.push(th)
        const p = await forum.post(th, 'p', author)
        posts.push(p)
        await forum.comment(p, 'c', author)
      }
    }
    const missing = '00000000-0000-4000-8000-0000000000ff'
    const groupSet = fc.subarray([G1, G2, G3])
    const capability = fc
      .record({
        member: groupSet,
        moderator: groupSet,
        admin: fc.boolean(),
        subject: fc.constantFrom('alice', 'bob'),
      })
      .map((s) =>
        makeCapability({
          subject: s.subject,
          admin: s.admin,
          groups: { member: s.member, moderator: s.moderator },
        }),
      )

    const client = await pool.connect()
    t.teardown(() => client.release())
    const rls = async <T>(
      cap: ReturnType<typeof makeCapability>,
      fn: () => Promise<T>,
    ): Promise<T | 'denied'> => {
      await client.query('BEGIN')
      try {
        await actAs(client, rt, cap)
        return await fn()
      } catch (e) {
        if ((e as { code?: string }).code === '42501') return 'denied'
        throw e
      } finally {
        await client.query('ROLLBACK')
      }
    }
    const guarded = async <T>(fn: () => Promise<T>): Promise<T | 'denied'> => {
      await client.query('BEGIN')
      try {
        return await fn()
      } catch (e) {
        if ((e as { code?: string }).code === 'KH_CAPABILITY_DENIED') return 'denied'
        throw e
      } finally {
        await client.query('ROLLBACK')
      }
    }
    const ids = (rows: { id?: unknown }[]) => rows.map((r) => String(r.id)).sort()

    await fc.assert(
      fc.asyncProperty(
        capability,
        fc.constantFrom(...GROUPS),
        fc.constantFrom(...threads, missing),
        fc.nat(threads.length - 1),
        async (cap, group, thread, pick) => {
          for (const table of ['discussion_threads', 'posts', 'comments'] as const) {
            const viaRls = await rls(
              cap,
              async () => (await client.query(`SELECT id FROM ${table}`)).rows,
            )
            const viaGuard = await guardedSelect(client, cap, {
              from: table,
              guard: policies.tables[table]!.read!,
            })
            t.same(ids(viaRls as { id: string }[]), ids(viaGuard), `read ${table}`)
            // The guard as a fragment of your own SQL, and as Kysely's guarded(): the same rows.
            const handle = bindPolicies(policies, client, cap)
            const viaFragment = await handle.query(
              fragmentQuery[table](handle.guard(table, 'read', { alias: 'x' })),
            )
            t.same(ids(viaFragment.rows), ids(viaGuard), `read ${table} through sql and guard()`)
            const viaKysely = await kysely<Record<string, { id: string }>>(handle)
              .selectFrom(`${table} as x`)
              .select('x.id')
              .where(kyselyGuard(handle, table, 'read', { alias: 'x' }))
              .execute()
            t.same(ids(viaKysely), ids(viaGuard), `read ${table} through Kysely's guarded()`)
          }
          const newThread = { group_id: group, title: 'n', created_by: cap.subject }
          t.equal(
            await rls(
              cap,
              async () =>
                (
                  await client.query(
                    'INSERT INTO discussion_threads (group_id, title, created_by) VALUES ($1, $2, $3)',
                    [group, 'n', cap.subject],
                  )
                ).rowCount,
            ),
            await guarded(
              async () => (
                await guardedInsert(client, cap, {
                  into: 'discussion_threads',
                  values: newThread,
                  guard: member,
                  returning: [],
                }),
                1
              ),
            ),
            'insert thread',
          )
          const rlsPost = await rls(
            cap,
            async () =>
              (
                await client.query(
                  'INSERT INTO posts (thread_id, content, author) VALUES ($1, $2, $3)',
                  [thread, 'x', cap.subject],
                )
              ).rowCount,
          )
          const guardPost = await guarded(
            async () => (
              await guardedInsert(client, cap, {
                into: 'posts',
                values: { thread_id: thread, content: 'x', author: cap.subject },
                guard: postMember,
                returning: [],
              }),
              1
            ),
          )
          // A missing thread: the guard refuses; RLS admits the row and the foreign key refuses it.
          if (thread !== missing) t.equal(rlsPost, guardPost, 'insert post')
          const target = threads[pick]!
          const rlsUpdate = await rls(
            cap,
            async () =>
              (
                await client.query('UPDATE discussion_threads SET group_id = $2 WHERE id = $1', [
                  target,
                  group,
                ])
              ).rowCount,
          )
          const guardUpdate = await guarded(
            async () =>
              (
                await guardedUpdate(client, cap, {
                  table: 'discussion_threads',
                  where: { id: target },
                  set: { group_id: group },
                  guard: authorOrModerator,
                  returning: [],
                })
              ).count,
          )
          t.equal(
            rlsUpdate === 'denied' ? 0 : rlsUpdate,
            guardUpdate === 'denied' ? 0 : guardUpdate,
            'update (move) thread',
          )
          const rlsDelete = await rls(
            cap,
            async () =>
              (await client.query('DELETE FROM posts WHERE id = $1', [posts[pick]])).rowCount,
          )
          const guardDelete = await guarded(
            async () =>
              (
                await guardedDelete(client, cap, {
                  from: 'posts',
                  where: { id: posts[pick]! },
                  guard: postModerator,
                })
              ).count,
          )
          t.equal(rlsDelete, guardDelete === 'denied' ? 0 : guardDelete, 'delete post')
        },
      ),
      { numRuns: 40 },
    )
  },
)
