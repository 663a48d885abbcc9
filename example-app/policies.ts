/**
 * The forum's access policy, written once. The handlers' guarded statements and the database's RLS
 * policies are both generated from these definitions, so the two lines of defence cannot drift.
 *
 * 1. Any user can create a thread in a group they belong to.
 * 2. Any user can post in a thread in a group they belong to.
 * 3. Moderators can do the above and delete threads (and posts) in groups they moderate.
 * 4. Admins can do all of the above in any group (every guard admits admins).
 * 5. The retention job (retention.ts), in keyhole's system context, reads and deletes threads of
 *    every group; nothing else crosses groups (their posts go by ON DELETE CASCADE).
 * 6. A group's invite code is for its moderators (and admins): they read it and make a new one;
 *    its members read only the group's ID and name. keyhole encrypts the code before it reaches
 *    the database, which holds only ciphertext (migrations/002.do.add-invite-codes.sql).
 */
import { adminOnly, and, definePolicies, inGroup, isSubject, or, viaParent } from 'keyhole'
import type { DB } from './tables.ts'

const member = inGroup('group_id', 'member')
const moderator = inGroup('group_id', 'moderator')
// Posts have no group column: they reach their group through their thread.
const thread = {
  table: 'discussion_threads',
  key: 'id',
  column: 'thread_id',
  groupColumn: 'group_id',
}

export const policies = definePolicies<DB>({
  groups: {
    read: inGroup('id', 'member'),
    insert: adminOnly(),
    // The only change to a group is a new invite code, by its moderators.
    update: inGroup('id', 'moderator'),
    columns: {
      read: { member: ['id', 'name'], moderator: '*' },
      write: { moderator: ['invite_code'], admin: '*' },
    },
    // The row key bound into each ciphertext is the group's id (keyhole's default).
    encrypted: ['invite_code'],
  },
  discussion_threads: {
    read: member,
    insert: member,
    // The author may rename a thread while still a member of its group; moderators always may.
    update: or(and(isSubject('created_by'), member), moderator),
    delete: moderator,
    system: ['read', 'delete'],
  },
  posts: {
    read: viaParent(thread, 'member'),
    insert: viaParent(thread, 'member'),
    delete: viaParent(thread, 'moderator'),
  },
})
