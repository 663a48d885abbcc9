/**
 * The thread list (example-app/thread-list.ts) is planned once per connection, not once per
 * request, when a few groups hold thousands of threads (the HTTP bench's state after its POSTs):
 * its prepared statement, under the forced policies as the runtime role, settles on the generic
 * plan. With `LIMIT $2` the generic plan counted a tenth of a group's estimated rows, looked
 * dearer than every custom plan, and each execution planned the list and its policies again.
 * The example's runtime pool also asks for one plan per connection (`plan_cache_mode`), so that
 * PostgreSQL's own choice, which a skewed group can tip either way, never re-plans it per request.
 */
import t from 'tap'
import { connectRuntime } from '../../example-app/database.ts'
import { threadListQuery } from '../../example-app/thread-list.ts'
import { startForum } from './helpers/forum.ts'

const forum = await startForum(t)
const { pool, prefix } = forum.db
// Group B holds 3 000 threads (distinct times, as posted ones have), group A the 50 listed.
await pool.query(
  `INSERT INTO discussion_threads (group_id, title, created_by, created_at)
     SELECT CASE WHEN i <= 50 THEN $1::uuid ELSE $2::uuid END, 't' || i, 'seed',
       now() - i * interval '1 ms'
     FROM generate_series(1, 3050) AS i`,
  [forum.groupA, forum.groupB],
)
await pool.query(
  `INSERT INTO posts (thread_id, content, author)
     SELECT id, 'p', 'seed' FROM discussion_threads, generate_series(1, 2) WHERE group_id = $1`,
  [forum.groupA],
)
await pool.query('ANALYZE discussion_threads, posts')

t.test('the list settles on a generic plan under the policies', async (t) => {
  for (const [name, label, query] of [
    ['list_first', 'the first page', {}],
    ['list_search', 'a page of 20 with a search', { limit: '20', q: 't1' }],
  ] as const) {
    const compiled = threadListQuery(forum.groupA, query).compile()
    const client = await pool.connect()
    try {
      // The runtime role, so that the forced policies are part of the plan (no capability is
      // set: the plan, not the rows, is what this reads).
      await client.query(`SET ROLE "${prefix}_app"`)
      for (let i = 0; i < 10; i++) {
        await client.query({ name, text: compiled.sql, values: [...compiled.parameters] })
      }
      const { rows } = await client.query<{ generic_plans: string; custom_plans: string }>(
        `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1`,
        [name],
      )
      t.match(compiled.sql, /limit \d+$/, `${label}: the limit is in the text`)
      t.ok(Number(rows[0]!.generic_plans) >= 5, `${label}: the generic plan is reused`)
      t.ok(Number(rows[0]!.custom_plans) <= 5, `${label}: no custom plan after the first five`)
      t.comment(`${label}: ${JSON.stringify(rows[0])}`)
    } finally {
      await client.query('RESET ROLE')
      client.release()
    }
  }
})

t.test("the example's runtime connections plan each prepared statement once", async (t) => {
  // connectRuntime as the test's superuser: the setting comes from the pool, not from the role.
  const runtime = connectRuntime(forum.db.url)
  t.teardown(() => runtime.end())
  const client = await runtime.connect()
  try {
    const show = async () =>
      (await client.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode')).rows[0]!
        .plan_cache_mode
    t.equal(await show(), 'force_generic_plan', 'sent at login')
    // keyhole.reset_session() ends each request's use of a connection with RESET ALL.
    await client.query('SET plan_cache_mode = auto')
    await client.query('RESET ALL')
    t.equal(await show(), 'force_generic_plan', "RESET ALL returns to the login's value")
    const compiled = threadListQuery(forum.groupA, {}).compile()
    await client.query(`SET ROLE "${prefix}_app"`)
    for (let i = 0; i < 3; i++) {
      await client.query({
        name: 'list_runtime',
        text: compiled.sql,
        values: [...compiled.parameters],
      })
    }
    const { rows } = await client.query<{ generic_plans: string; custom_plans: string }>(
      `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'list_runtime'`,
    )
    t.same(rows[0], { generic_plans: '3', custom_plans: '0' }, 'no custom plan, from the first')
  } finally {
    await client.query('RESET ROLE')
    client.release()
  }
})
