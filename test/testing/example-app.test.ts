/**
 * The example forum's whole access policy (the four rules of example-app/README.md), written once
 * as an expectation table in example-app/access.ts, checked through both layers by keyhole/testing;
 * a wrong expectation (a member deleting a thread) fails with the matrix.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createPolicyTest, PolicyMismatch } from 'keyhole/testing'
// access.ts's policies: the forum's own (its groups' column rules and encrypted invite code too).
import { expectedAccess, policies } from '../../example-app/access.ts'
import { scratchName, serverUrl } from '../helpers/database.ts'

const started = Date.now()
const test = await createPolicyTest({
  policies,
  databaseUrl: serverUrl(),
  database: scratchName(),
  migrations: fileURLToPath(new URL('../../example-app/migrations/', import.meta.url)),
})
t.teardown(() => test.close())
t.comment(`scratch database ready in ${Date.now() - started} ms`)

t.test(
  'the example forum: every caller and operation as its README says, both layers',
  async (t) => {
    const begun = Date.now()
    const result = await test.check(expectedAccess())
    t.ok(result.ok)
    t.equal(result.cells.length, 3 * test.callers.length * 10)
    t.comment(`${result.cells.length} cells observed in ${Date.now() - begun} ms`)
    const groups = (caller: string, operation: string) =>
      result.cells.find(
        (c) => c.table === 'groups' && c.caller === caller && c.operation === operation,
      )!
    t.match(
      groups('member of A', 'update A').guard.statements,
      [{ allowed: false, error: undefined, refused: /^KH_COLUMN_DENIED: / }],
      "a member's update of its group is refused by the column rules (the invite code)",
    )
    t.equal(groups('moderator of A', 'update A').guard.statements[0]!.refused, undefined)
    t.same(
      [groups('admin', 'move A to B').guard.outcome, groups('admin', 'move A to B').rls.outcome],
      ['n/a', 'n/a'],
      "a group's row is placed by its own key: no move",
    )
  },
)

t.test('a wrong expectation (a member deleting a thread) fails with the matrix', async (t) => {
  const wrong = expectedAccess().table('discussion_threads').as('member of A').can('delete A')
  const error = await test.check(wrong).catch((e: unknown) => e)
  t.type(error, PolicyMismatch)
  const mismatch = error as PolicyMismatch
  t.equal(mismatch.name, 'PolicyMismatch')
  t.equal(mismatch.code, 'ERR_ASSERTION')
  t.same(
    mismatch.report.failures.map((c) => [
      c.table,
      c.caller,
      c.operation,
      c.expected,
      c.guard.outcome,
      c.rls.outcome,
    ]),
    [['discussion_threads', 'member of A', 'delete A', 'all', 'none', 'none']],
  )
  t.comment(mismatch.message)
})
