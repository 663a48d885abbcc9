/**
 * What each caller may do in the forum, written down once as keyhole/testing's expectation table:
 * the four rules of README.md, checked through both layers (the guarded statements and the forced
 * RLS policies) by test/testing/example-app.test.ts. A cell not written here expects no access, so
 * a policy that grants more fails that test until the grant is written down here too.
 */
import { expectAccess } from 'keyhole/testing'
import { policies as forum } from './policies.ts'

/**
 * The forum's policies, as the server binds them: the groups' column rules and encrypted invite
 * code included (keyhole/testing's update probe sets the code, the one column a moderator may
 * write; a member's update is refused by the column rules). Which columns each role reads is
 * checked through the API by contract.test.ts, on both adapters.
 */
export const policies = forum

export function expectedAccess() {
  const expected = expectAccess(policies)
  for (const g of ['A', 'B'] as const) {
    // 6. A group's moderators may change it (its invite code); its members may not.
    expected.table('groups').as(`member of ${g}`).can(`read ${g}`)
    expected.as(`moderator of ${g}`).can(`read ${g}`, `update ${g}`)
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
  expected.table('groups').as('admin').can('read', 'insert', 'update')
  expected.table('discussion_threads').as('admin').can('any')
  expected.table('posts').as('admin').can('read', 'insert', 'delete')
  return expected
}

/** For `keyhole test-policies --expect example-app/access.ts`. */
export default expectedAccess
