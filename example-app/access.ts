/**
 * What each caller may do in the forum, written down once as keyhole/testing's expectation table:
 * the four rules of README.md, checked through both layers (the guarded statements and the forced
 * RLS policies) by test/testing/example-app.test.ts. A cell not written here expects no access, so
 * a policy that grants more fails that test until the grant is written down here too.
 */
import { definePolicies } from 'keyhole'
import { expectAccess } from 'keyhole/testing'
import { policies as forum } from './policies.ts'

/**
 * The policies as keyhole/testing checks them: which rows each caller reads, inserts, updates and
 * deletes. The groups' invite code is left out (its column rules, its encryption and the update
 * that makes a new one), which keyhole/testing cannot probe yet: it binds no data keys, and its
 * update and move probes set each row's group column, on groups the primary key every code is
 * bound to (an admin's move then collides with the other group's row). contract.test.ts tests the
 * invite code through the API, on both adapters.
 */
export const policies = definePolicies(
  Object.fromEntries(
    Object.entries(forum.tables).map(([table, policy]) => {
      if (table !== 'groups') return [table, policy]
      const { columns, encrypted, update, ...rows } = policy
      return [table, rows]
    }),
  ),
)

export function expectedAccess() {
  const expected = expectAccess(policies)
  for (const g of ['A', 'B'] as const) {
    expected.table('groups').as(`member of ${g}`).can(`read ${g}`)
    expected.as(`moderator of ${g}`).can(`read ${g}`)
    // 1. Any user can create a thread in a group they belong to (and rename their own).
    expected
      .table('discussion_threads')
      .as(`member of ${g}`)
      .can(`read ${g}`, `insert ${g}`)
      .partly(`update ${g}`)
      // 3. Moderators can do the above and delete threads (and posts) in groups they moderate.
      .as(`moderator of ${g}`)
      .can(`read ${g}`, `insert ${g}`, `update ${g}`, `delete ${g}`)
    // 2. Any user can post in a thread in a group they belong to.
    expected
      .table('posts')
      .as(`member of ${g}`)
      .can(`read ${g}`, `insert ${g}`)
      .as(`moderator of ${g}`)
      .can(`read ${g}`, `insert ${g}`, `delete ${g}`)
  }
  // 4. Admins can do all of the above in any group (and create groups).
  expected.table('groups').as('admin').can('read', 'insert')
  expected.table('discussion_threads').as('admin').can('any')
  expected.table('posts').as('admin').can('read', 'insert', 'delete')
  return expected
}

/** For `keyhole test-policies --expect example-app/access.ts`. */
export default expectedAccess
