import t from 'tap'
import { arrayLiteral, cachedStatement, StatementParams } from '../../src/sql/compile.ts'
import { adminOnly, and, inGroup, isSubject, or, viaParent } from '../../src/sql/guard.ts'
import { guardedDelete } from '../../src/sql/guarded-delete.ts'
import { guardedUpdate } from '../../src/sql/guarded-update.ts'
import { columnsOf, renderGuard, sqlText } from '../../src/sql/render-guard.ts'
import { makeCapability } from '../helpers/sql-capability.ts'

const render = (guard: ReturnType<typeof inGroup>, admin: boolean) => {
  const params = new StatementParams(admin, 'uuid')
  return params.compile(sqlText(renderGuard(guard.node, columnsOf('"t"'), params)))
}

t.test(
  'statement target: parameters numbered after folding, admin folded at compile time',
  async (t) => {
    const guard = or(
      and(isSubject('created_by'), inGroup('group_id', 'member')),
      inGroup('group_id', 'moderator'),
    )
    const user = render(guard, false)
    t.equal(
      user.text,
      '(("t"."created_by" = $1 AND "t"."group_id" = ANY ($2::uuid[])) OR "t"."group_id" = ANY ($3::uuid[]))',
    )
    t.same(user.sources, [
      { kind: 'subject' },
      { kind: 'groups', role: 'member' },
      { kind: 'groups', role: 'moderator' },
    ])
    const admin = render(guard, true)
    t.equal(admin.text, 'TRUE', 'no OR $admin, no unused parameter')
    t.same(admin.sources, [])
    t.same([...admin.roles].sort(), ['member', 'moderator'], 'folded roles are still validated')
    t.equal(render(and(adminOnly(), inGroup('group_id', 'member')), false).text, 'FALSE')
    t.equal(render(or(adminOnly(), adminOnly()), false).text, 'FALSE')
    t.equal(render(and(adminOnly(), adminOnly()), true).text, 'TRUE')
    const link = { table: 'discussion_threads', key: 'id', column: 'thread_id' }
    t.equal(render(viaParent({ ...link, groupColumn: adminOnly() }), false).text, 'FALSE')
    t.equal(
      render(viaParent({ ...link, groupColumn: adminOnly() }), true).text,
      'EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE "p1"."id" = "t"."thread_id")',
      'an admin still needs the parent to exist',
    )
  },
)

t.test('group arrays become literals once per frozen array; odd elements are quoted', async (t) => {
  const frozen = Object.freeze(['00000000-0000-4000-8000-000000000001', '2'])
  t.equal(arrayLiteral(frozen, 'uuid'), '{00000000-0000-4000-8000-000000000001,2}')
  t.equal(arrayLiteral(frozen, 'uuid'), '{00000000-0000-4000-8000-000000000001,2}')
  t.equal(arrayLiteral(['1,3', 'a"b\\', '-4'], 'bigint'), '{"1,3","a\\"b\\\\",-4}')
  t.equal(arrayLiteral(['x', 'y z'], 'text'), '{"x","y z"}')
  t.equal(arrayLiteral([], 'integer'), '{}')
})

t.test('the statement cache is bounded', async (t) => {
  const build = () => new StatementParams(false, 'uuid').compile('SELECT 1')
  for (let i = 0; i < 1100; i++) cachedStatement(`bounded-${i}`, build)
  let rebuilt = 0
  cachedStatement('bounded-0', () => (rebuilt++, build()))
  cachedStatement('bounded-1099', () => (rebuilt++, build()))
  t.equal(rebuilt, 1, 'the oldest entry was evicted, the newest kept')
})

t.test('write statements: misuse, bigint values', async (t) => {
  const seen: unknown[][] = []
  const q = {
    query: async (config: { text: string; values?: unknown[] }) => {
      seen.push(config.values ?? [])
      return { rows: [{ __keyhole_affected: 1, __keyhole_found: 1, __keyhole_visible: 1 }] }
    },
  }
  const cap = makeCapability({ groups: { member: ['g'] } })
  await t.rejects(guardedDelete(q, cap, { from: 'posts', where: {} } as never), {
    code: 'KH_INVALID_OPTIONS',
  })
  await guardedUpdate(q, cap, {
    table: 'posts',
    where: {},
    set: { n: 2n ** 64n },
    guard: inGroup('group_id', 'member'),
    returning: [],
  })
  t.equal(seen[0]![0], 2n ** 64n, 'a bigint goes to pg as it is (pg sends its decimal text)')
})
