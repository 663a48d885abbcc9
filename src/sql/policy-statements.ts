/**
 * The RLS policy statements, compiled once from the same guards the application's statements use:
 * the structure every consumer reads (as Kysely's `CompiledQuery` is), so nothing parses keyhole's
 * own SQL text back. The plain text (`renderPolicySql`), the recorded migration SQL
 * (`renderRecordedPolicySql`) and the start-up checks (`expectedPolicies`) all start here.
 *
 * The capability's values come from the `keyhole` schema's functions (signed, transaction-local),
 * each called through a scalar subquery so it runs once per statement.
 */
import type { GroupIdType } from '../capability/capability.ts'
import { ConfigurationError } from '../errors.ts'
import type { GuardNode } from './guard.ts'
import { quoteIdentifier, quoteTable, type TableName } from './identifier.ts'
import type { Policies, PolicyOperation } from './policies.ts'
import { columnsOf, orSql, renderGuard, sqlText, type GuardTarget } from './render-guard.ts'

export interface PolicyStatementOptions {
  /** The group-ID type the group arrays are cast to. */
  readonly groupIdType: GroupIdType
  /** The runtime role the policies apply to (never PUBLIC). */
  readonly role: string
}

/** The SQL command a policy covers, one per {@link PolicyOperation}. */
export type PolicyCommand = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE'

/** keyhole's name for the policy of a command. */
export type PolicyName = 'keyhole_select' | 'keyhole_insert' | 'keyhole_update' | 'keyhole_delete'

interface Statement {
  /** The table, quoted as the statement names it: `"app"."posts"`. */
  readonly table: string
  /** The statement's text, without its semicolon. */
  readonly sql: string
}

/** `ALTER TABLE … ENABLE` / `FORCE ROW LEVEL SECURITY`. */
export interface RowSecurityStatement extends Statement {
  readonly kind: 'enable-rls' | 'force-rls'
}

/** `DROP POLICY IF EXISTS`: every keyhole policy of a table, declared operation or not. */
export interface DropPolicyStatement extends Statement {
  readonly kind: 'drop-policy'
  readonly name: PolicyName
}

/** `CREATE POLICY … AS PERMISSIVE FOR <command> TO <role>`, for a declared operation. */
export interface CreatePolicyStatement extends Statement {
  readonly kind: 'create-policy'
  readonly name: PolicyName
  readonly command: PolicyCommand
  /** The runtime role, quoted. */
  readonly role: string
  /** The USING expression, when the command has one (SELECT, UPDATE, DELETE). */
  readonly using: string | undefined
  /** The WITH CHECK expression, when the command has one (INSERT, UPDATE). */
  readonly withCheck: string | undefined
}

export type PolicyStatement = RowSecurityStatement | DropPolicyStatement | CreatePolicyStatement

const GROUP_ID_TYPES: readonly GroupIdType[] = ['uuid', 'bigint', 'integer', 'text']

const COMMANDS: readonly [
  PolicyOperation,
  PolicyCommand,
  PolicyName,
  'USING' | 'WITH CHECK' | 'BOTH',
][] = [
  ['read', 'SELECT', 'keyhole_select', 'USING'],
  ['insert', 'INSERT', 'keyhole_insert', 'WITH CHECK'],
  ['update', 'UPDATE', 'keyhole_update', 'BOTH'],
  ['delete', 'DELETE', 'keyhole_delete', 'USING'],
]

/**
 * Whether the SELECT policy of `table` admits exactly the rows `parent` admits: the table is one
 * of these policies' (by the same quoted name), its read guard is the same tree as `parent`, and it
 * declares no `system` read (whose branch would admit more). Then a policy's `viaParent` subquery
 * on it need not repeat the parent's condition: PostgreSQL applies the parent's policies to a
 * subquery inside a policy as to any query of the runtime role, so the subquery sees only the rows
 * the condition admits, and repeating it verified the capability once more per statement.
 */
function parentEnforcer(policies: Policies): (table: TableName, parent: GuardNode) => boolean {
  const reads = new Map<string, string>()
  for (const [declared, policy] of Object.entries(policies.tables)) {
    if (policy.read !== undefined && policy.system?.includes('read') !== true) {
      reads.set(quoteTable(declared).sql, JSON.stringify(policy.read.node))
    }
  }
  return (table, parent) => reads.get(table.sql) === JSON.stringify(parent)
}

function policyTarget(groupIdType: GroupIdType, policies: Policies): GuardTarget {
  return {
    parentEnforces: parentEnforcer(policies),
    admin: '(SELECT keyhole.is_admin())',
    // Roles passed the identifier check when the guard was built: safe inside a literal. The cast
    // is inside the sub-select, so its InitPlan converts the IDs once per statement: cast outside,
    // `(InitPlan).col1::uuid[]` is evaluated for every row the policy checks (every ID parsed again
    // per row: 50 rows of a 10-group holder cost ~150 µs more). The outer cast only makes the
    // sub-select a scalar array for ANY (`= ANY ((SELECT …))` would compare with its rows); it is
    // the same type, so PostgreSQL drops it.
    groups: (role) => `(SELECT keyhole.group_ids('${role}')::${groupIdType}[])::${groupIdType}[]`,
    subject: () => '(SELECT keyhole.subject())',
    castSubjectColumn: true,
    /* c8 ignore next: never called, a policy's admin flag is SQL and never folds */
    noteRole: () => {},
  }
}

/**
 * The branch that admits a system context for `operation` on `table` (the name as the policies
 * declare it: letters, digits, underscores and one dot, so safe inside a literal): true only when
 * this transaction's signed system grant lists them (see sql/000002.do.keyhole-system.sql).
 */
function systemClause(table: string, operation: PolicyOperation): string {
  return `(SELECT keyhole.system_allows('${table}', '${operation}'))`
}

/**
 * The statements that install the policies, in order, idempotent: per table, row security enabled
 * and forced, then for each command its policy dropped and, when the operation is declared,
 * created again (an operation without a guard gets no policy, so RLS refuses it). An operation the
 * table declares for `system` gets the branch that admits a signed system grant naming it:
 * ```sql
 * CREATE POLICY keyhole_select ON "invitations" AS PERMISSIVE FOR SELECT TO "app_runtime"
 *   USING ((("invitations"."group_id" = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[])
 *     OR (SELECT keyhole.is_admin())) OR (SELECT keyhole.system_allows('invitations', 'read'))))
 * ```
 * @throws ConfigurationError for an unknown group-ID type or a bad role name.
 */
export function compilePolicyStatements(
  policies: Policies,
  options: PolicyStatementOptions,
): PolicyStatement[] {
  if (!GROUP_ID_TYPES.includes(options?.groupIdType)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `groupIdType must be one of ${GROUP_ID_TYPES.join(', ')}`,
    )
  }
  const role = quoteIdentifier(options.role, 'role')
  const target = policyTarget(options.groupIdType, policies)
  const out: PolicyStatement[] = []
  for (const [declared, policy] of Object.entries(policies.tables)) {
    const name = quoteTable(declared)
    const table = name.sql
    const scope = columnsOf(name.relation)
    out.push({ kind: 'enable-rls', table, sql: `ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY` })
    out.push({ kind: 'force-rls', table, sql: `ALTER TABLE ${table} FORCE ROW LEVEL SECURITY` })
    for (const [operation, command, policyName, clause] of COMMANDS) {
      out.push({
        kind: 'drop-policy',
        table,
        name: policyName,
        sql: `DROP POLICY IF EXISTS ${policyName} ON ${table}`,
      })
      const guard = policy[operation]
      const system = policy.system?.includes(operation) === true
      if (guard === undefined && !system) continue
      const condition = sqlText(
        orSql([
          guard === undefined ? false : renderGuard(guard.node, scope, target),
          system ? systemClause(declared, operation) : false,
        ]),
      )
      const using = clause === 'WITH CHECK' ? undefined : condition
      const withCheck = clause === 'USING' ? undefined : condition
      const clauses = [
        ...(using === undefined ? [] : [`USING (${using})`]),
        ...(withCheck === undefined ? [] : [`WITH CHECK (${withCheck})`]),
      ].join(' ')
      out.push({
        kind: 'create-policy',
        table,
        name: policyName,
        command,
        role,
        using,
        withCheck,
        sql: `CREATE POLICY ${policyName} ON ${table} AS PERMISSIVE FOR ${command} TO ${role} ${clauses}`,
      })
    }
  }
  return out
}
