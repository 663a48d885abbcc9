/**
 * The record that lets the start-up checks compare an installed policy with the one keyhole
 * generates, EXACTLY, from the runtime connection alone.
 *
 * Why a record: PostgreSQL can only tell whether two policy expressions are the same after
 * parsing both, and parsing the expected one means creating a policy, which needs the table's
 * owner (and an ACCESS EXCLUSIVE lock on the table, every monitor tick). The runtime role may
 * create nothing, and the serving process must not hold the migration role's credentials. So
 * the policy SQL that migrations apply (`renderRecordedPolicySql` in policy-sql.ts) creates each
 * policy from its statement text inside one DO block that, in the same transaction, records on the policy itself (`COMMENT ON POLICY`, which
 * only the table's owner may write and everyone may read) two SHA-256 digests:
 * - `statement`: the exact `CREATE POLICY` text it executed. The checks render the application's
 *   policies again and compare: a change of guard, runtime role, command or group-ID type since
 *   the migration shows as a different statement.
 * - `definition`: what PostgreSQL made of it: command, permissive or restrictive, roles, and the
 *   parsed USING and WITH CHECK trees (`pg_node_tree`, locations removed). The checks recompute
 *   it from `pg_policy`: an `ALTER POLICY`, or a policy dropped and created by hand, shows.
 *
 * Parse trees, not `pg_get_expr` text: the text depends on the session's search_path (names
 * visible in it are printed unqualified), the trees do not. They hold object ids, so a restore
 * from a dump or a major-version upgrade also shows as a change: re-apply the policies (as
 * `keyhole migrate` does) after either. That errs on the safe side.
 */
import { createHash } from 'node:crypto'
import type { Policies } from '../../sql/policies.ts'
import {
  compilePolicyStatements,
  type CreatePolicyStatement,
  type PolicyStatement,
  type PolicyStatementOptions,
} from '../../sql/policy-statements.ts'

/** `keyhole-policy v1 statement:<hex> definition:<hex>`, the comment on a recorded policy. */
const RECORD = /^keyhole-policy v1 statement:([0-9a-f]{64}) definition:([0-9a-f]{64})$/

/** A recorded policy's digests, or undefined when the comment is not keyhole's record. */
export function parseRecord(
  comment: string | null,
): { statement: string; definition: string } | undefined {
  const match = RECORD.exec(comment ?? '')
  return match === null ? undefined : { statement: match[1]!, definition: match[2]! }
}

/**
 * The SHA-256 (hex) of a policy as PostgreSQL holds it, over `pg_policy` aliased `p`. Every name
 * is schema-qualified: the migration runs it with the migration role's search_path.
 */
export const POLICY_DEFINITION_SQL = `pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
  pg_catalog.concat_ws(' | ', p.polcmd, p.polpermissive,
    (SELECT pg_catalog.string_agg(CASE WHEN r.oid = 0 THEN 'PUBLIC'
       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.oid)) END, ',' ORDER BY r.oid)
     FROM pg_catalog.unnest(p.polroles) AS r (oid)),
    pg_catalog.regexp_replace(COALESCE(p.polqual::text, ''), ' :(location|stmt_location|stmt_len) -?[0-9]+', '', 'g'),
    pg_catalog.regexp_replace(COALESCE(p.polwithcheck::text, ''), ' :(location|stmt_location|stmt_len) -?[0-9]+', '', 'g')),
  'UTF8')), 'hex')`

/** One policy keyhole generates, as the record holds it. */
export interface ExpectedPolicy {
  /** The table as the statement names it (quoted SQL: `"app"."posts"`). */
  readonly table: string
  /** `keyhole_select`, `keyhole_insert`, `keyhole_update` or `keyhole_delete`. */
  readonly name: string
  /** The `CREATE POLICY` statement, without its semicolon. */
  readonly statement: string
  /** Its SHA-256 (hex) over UTF-8, as the record holds it. */
  readonly statementSha256: string
}

export type ExpectedPolicyOptions = PolicyStatementOptions

/** Whether a compiled statement creates a policy. */
export function createsPolicy(statement: PolicyStatement): statement is CreatePolicyStatement {
  return statement.kind === 'create-policy'
}

/** The policy a `CREATE POLICY` statement makes, with the digest its record carries. */
export function expectedPolicy(statement: CreatePolicyStatement): ExpectedPolicy {
  return {
    table: statement.table,
    name: statement.name,
    statement: statement.sql,
    statementSha256: createHash('sha256').update(statement.sql, 'utf8').digest('hex'),
  }
}

/**
 * The policies keyhole generates for `policies`, one per table and declared operation, in the
 * order the policy SQL creates them.
 * @throws ConfigurationError as `renderPolicySql` (a bad role name or group-ID type).
 */
export function expectedPolicies(
  policies: Policies,
  options: ExpectedPolicyOptions,
): ExpectedPolicy[] {
  return compilePolicyStatements(policies, options).filter(createsPolicy).map(expectedPolicy)
}
