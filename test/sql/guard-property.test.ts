import t from 'tap'
import fc from 'fast-check'
import { guardedInsert } from '../../src/sql/guarded-insert.ts'
import { guardedSelect } from '../../src/sql/guarded-select.ts'
import { makeCapability } from '../helpers/sql-capability.ts'
import { authorOrModerator, createForum, GROUPS, member, postMember } from '../helpers/sql-forum.ts'

t.test('what the SQL guard lets through equals a plain JavaScript decision', async (t) => {
  const forum = await createForum(t)
  const { pool } = forum
  const threads = new Map<string, string>() // thread id → group
  for (const g of GROUPS)
    for (let i = 0; i < 2; i++) threads.set(await forum.thread(g, 't', i ? 'alice' : 'bob'), g)
  const missing = '00000000-0000-4000-8000-0000000000ff'
  const groupSet = fc.subarray<string>([...GROUPS])
  const capSpec = fc.record({
    member: groupSet,
    moderator: groupSet,
    admin: fc.boolean(),
    subject: fc.constantFrom('alice', 'bob'),
  })
  const threadRow = fc.record({
    group_id: fc.constantFrom(...GROUPS),
    title: fc.string(),
    created_by: fc.constantFrom('alice', 'bob'),
  })
  const postRow = fc.record({
    thread_id: fc.constantFrom(...threads.keys(), missing),
    content: fc.string({ unit: 'grapheme' }),
    author: fc.constant('x'),
  })
  const client = await pool.connect()
  t.teardown(() => client.release())
  let runs = 0
  await fc.assert(
    fc.asyncProperty(
      capSpec,
      fc.array(threadRow, { minLength: 1, maxLength: 6 }),
      fc.array(postRow, { minLength: 1, maxLength: 6 }),
      async (spec, threadRows, postRows) => {
        runs++
        const cap = makeCapability({
          subject: spec.subject,
          admin: spec.admin,
          groups: { member: spec.member, moderator: spec.moderator },
        })
        const isMember = (g: string) =>
          spec.admin || spec.member.includes(g) || spec.moderator.includes(g)
        const isModerator = (g: string) => spec.admin || spec.moderator.includes(g)
        const expectThreads = threadRows.flatMap((r, i) =>
          (r.created_by === spec.subject && isMember(r.group_id)) || isModerator(r.group_id)
            ? []
            : [i],
        )
        const expectPosts = postRows.flatMap((r, i) =>
          threads.has(r.thread_id) && isMember(threads.get(r.thread_id)!) ? [] : [i],
        )
        await client.query('BEGIN')
        try {
          const a = await guardedInsert(client, cap, {
            into: 'discussion_threads',
            values: threadRows,
            guard: authorOrModerator,
          })
          const b = await guardedInsert(client, cap, {
            into: 'posts',
            values: postRows,
            guard: postMember,
          })
          const visible = await guardedSelect(client, cap, {
            from: 'discussion_threads',
            guard: member,
            columns: ['group_id'],
          })
          const all = (await client.query('SELECT group_id FROM discussion_threads')).rows
          return (
            JSON.stringify(a.refused) === JSON.stringify(expectThreads) &&
            JSON.stringify(b.refused) === JSON.stringify(expectPosts) &&
            visible.length === all.filter((r) => isMember(r.group_id)).length &&
            b.inserted.every(
              (r, k) =>
                r.content === postRows.filter((_, i) => !expectPosts.includes(i))[k]!.content,
            )
          )
        } finally {
          await client.query('ROLLBACK')
        }
      },
    ),
    { numRuns: 150 },
  )
  t.equal(runs, 150, '150 runs against one database')
})
