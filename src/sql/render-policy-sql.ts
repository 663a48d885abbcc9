/**
 * RLS policies generated from the same guards the statements use, for the database's second line
 * of defence. The capability's values come from the `keyhole` schema's functions (signed,
 * transaction-local), each called through a scalar subquery so it runs once per statement.
 */
import type { GroupIdType } from '../capability/capability.ts'
import { ConfigurationError } from '../errors.ts'
import { quoteIdentifier, quoteTable } from './identifier.ts'
import type { Policies, PolicyOperation } from './policies.ts'
import { columnsOf, renderGuard, sqlText, type GuardTarget } from './render-guard.ts'

export interface RenderPolicyOptions {
  /** The group-ID type the group arrays are cast to. */
  readonly groupIdType: GroupIdType
  /** The runtime role the policies apply to (never PUBLIC). */
  readonly role: string
}

const GROUP_ID_TYPES: readonly GroupIdType[] = ['uuid', 'bigint', 'integer', 'text']

const COMMANDS: readonly [PolicyOperation, string, 'USING' | 'WITH CHECK' | 'BOTH'][] = [
  ['read', 'SELECT', 'USING'],
  ['insert', 'INSERT', 'WITH CHECK'],
  ['update', 'UPDATE', 'BOTH'],
  ['delete', 'DELETE', 'USING'],
]

function policyTarget(groupIdType: GroupIdType): GuardTarget {
  return {
    admin: '(SELECT keyhole.is_admin())',
    // Roles passed the identifier check when the guard was built: safe inside a literal.
    groups: (role) => `(SELECT keyhole.group_ids('${role}'))::${groupIdType}[]`,
    subject: () => '(SELECT keyhole.subject())',
    castSubjectColumn: true,
    /* c8 ignore next: never called, a policy's admin flag is SQL and never folds */
    noteRole: () => {},
  }
}

/**
 * The SQL that installs the policies, idempotent (each policy dropped first; an operation without
 * a guard gets no policy, so RLS refuses it). Per table:
 * ```sql
 * ALTER TABLE "posts" ENABLE ROW LEVEL SECURITY;
 * ALTER TABLE "posts" FORCE ROW LEVEL SECURITY;
 * DROP POLICY IF EXISTS keyhole_select ON "posts";
 * CREATE POLICY keyhole_select ON "posts" AS PERMISSIVE FOR SELECT TO "app_runtime"
 *   USING (EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE ("p1"."id" = "posts"."thread_id"
 *     AND ("p1"."group_id" = ANY ((SELECT keyhole.group_ids('member'))::uuid[]) OR (SELECT keyhole.is_admin())))));
 * -- … keyhole_insert (WITH CHECK), keyhole_update (USING and WITH CHECK), keyhole_delete (USING)
 * ```
 * @throws ConfigurationError for an unknown group-ID type or a bad role name.
 */
export function renderPolicySql(policies: Policies, options: RenderPolicyOptions): string {
  if (!GROUP_ID_TYPES.includes(options?.groupIdType)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `groupIdType must be one of ${GROUP_ID_TYPES.join(', ')}`,
    )
  }
  const role = quoteIdentifier(options.role, 'role')
  const target = policyTarget(options.groupIdType)
  const out: string[] = []
  for (const [name, policy] of Object.entries(policies.tables)) {
    const table = quoteTable(name)
    const scope = columnsOf(table.relation)
    out.push(`-- ${table.sql}`)
    out.push(`ALTER TABLE ${table.sql} ENABLE ROW LEVEL SECURITY;`)
    out.push(`ALTER TABLE ${table.sql} FORCE ROW LEVEL SECURITY;`)
    for (const [operation, command, clause] of COMMANDS) {
      const policyName = `keyhole_${command.toLowerCase()}`
      out.push(`DROP POLICY IF EXISTS ${policyName} ON ${table.sql};`)
      const guard = policy[operation]
      if (guard === undefined) continue
      const condition = `(${sqlText(renderGuard(guard.node, scope, target))})`
      const clauses =
        clause === 'BOTH' ? `USING ${condition} WITH CHECK ${condition}` : `${clause} ${condition}`
      out.push(
        `CREATE POLICY ${policyName} ON ${table.sql} AS PERMISSIVE FOR ${command} TO ${role} ${clauses};`,
      )
    }
  }
  return out.join('\n') + '\n'
}
