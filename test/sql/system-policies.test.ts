/**
 * `system` in definePolicies: validated once (deny by default), and the RLS policies it
 * generates: a branch admitting a signed system grant for exactly the declared operations.
 */
import t from 'tap'
import { inGroup } from '../../src/sql/guard.ts'
import { definePolicies, tableOperations, type TablePolicy } from '../../src/sql/policies.ts'
import { renderPolicySql } from '../../src/sql/render-policy-sql.ts'

const member = inGroup('group_id', 'member')

t.test('system lists are checked, each operation once in keyhole order, frozen', async (t) => {
  const policies = definePolicies({
    invitations: { read: member, system: ['update', 'read', 'read'] },
    'app.sessions': { system: ['insert'] },
    notes: { read: member },
  })
  t.same(policies.tables.invitations?.system, ['read', 'update'])
  t.ok(Object.isFrozen(policies.tables.invitations?.system))
  t.same(policies.tables['app.sessions']?.system, ['insert'])
  t.equal(policies.tables.notes?.system, undefined, 'deny by default')
  t.same(tableOperations(policies.tables.invitations as TablePolicy), ['read', 'update'])
  t.same(tableOperations(policies.tables['app.sessions'] as TablePolicy), ['insert'])
  t.same(tableOperations(policies.tables.notes as TablePolicy), ['read'])
  const bad: [string, unknown, RegExp][] = [
    ['not a list', 'read', /must be a list of read, insert, update and delete/],
    ['an unknown operation', ['read', 'truncate'], /must be a list/],
    ['a case variant', ['Read'], /must be a list/],
    ['an object', { read: true }, /must be a list/],
    ['update without read', ['update'], /include update or delete but not read/],
    ['delete without read', ['insert', 'delete'], /include update or delete but not read/],
  ]
  for (const [name, system, message] of bad) {
    t.throws(
      () => definePolicies({ t: { read: member, system } as unknown as TablePolicy }),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
})

t.test('the policies admit a system grant for the declared operations only', async (t) => {
  const policies = definePolicies({
    invitations: { read: member, system: ['read', 'update'] },
    'app.sessions': { system: ['insert'] },
  })
  const sql = renderPolicySql(policies, { groupIdType: 'uuid', role: 'app_runtime' })
  t.match(
    sql,
    `CREATE POLICY keyhole_select ON "invitations" AS PERMISSIVE FOR SELECT TO "app_runtime" USING ((("invitations"."group_id" = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())) OR (SELECT keyhole.system_allows('invitations', 'read'))));`,
    'a guard and the system branch',
  )
  t.match(
    sql,
    `CREATE POLICY keyhole_update ON "invitations" AS PERMISSIVE FOR UPDATE TO "app_runtime" USING ((SELECT keyhole.system_allows('invitations', 'update'))) WITH CHECK ((SELECT keyhole.system_allows('invitations', 'update')));`,
    'system alone: USING and WITH CHECK',
  )
  t.match(
    sql,
    `CREATE POLICY keyhole_insert ON "app"."sessions" AS PERMISSIVE FOR INSERT TO "app_runtime" WITH CHECK ((SELECT keyhole.system_allows('app.sessions', 'insert')));`,
    'the table as the policies name it',
  )
  t.notMatch(sql, /keyhole_insert ON "invitations" AS/, 'no insert declared: no policy')
  t.notMatch(sql, /keyhole_delete ON "invitations" AS/)
  t.notMatch(sql, /keyhole_select ON "app"."sessions" AS/)
})
