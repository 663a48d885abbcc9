/**
 * The record that lets the start-up checks compare an installed policy with the one keyhole
 * generates, EXACTLY, from the runtime connection alone.
 *
 * Why a record: PostgreSQL can only tell whether two policy expressions are the same after
 * parsing both, and parsing the expected one means creating a policy, which needs the table's
 * owner (and an ACCESS EXCLUSIVE lock on the table, every monitor tick). The runtime role may
 * create nothing, and the serving process must not hold the migration role's credentials. So
 * the policy SQL that migrations apply creates each policy from its statement text inside one DO
 * block that, in the same transaction, records on the policy itself (`COMMENT ON POLICY`, which
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
import type { GroupIdType } from '../../capability/capability.ts'
import { renderPolicySql, type Policies } from '../../sql/policies.ts'

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

/** One policy keyhole generates, as `renderPolicySql` writes it. */
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

export interface ExpectedPolicyOptions {
  /** The runtime role the policies apply to. */
  readonly role: string
  readonly groupIdType: GroupIdType
}

const CREATE = /^CREATE POLICY ([a-z_]+) ON (.+?) AS PERMISSIVE FOR /

/**
 * The policies `renderPolicySql` generates for `policies`, one per table and declared operation,
 * in its order. Every statement is one line of its output.
 * @throws ConfigurationError as `renderPolicySql` (a bad role name or group-ID type).
 */
export function expectedPolicies(
  policies: Policies,
  options: ExpectedPolicyOptions,
): ExpectedPolicy[] {
  const sql = renderPolicySql(policies, { role: options.role, groupIdType: options.groupIdType })
  return sql.split('\n').flatMap((line) => {
    const match = CREATE.exec(line)
    if (match === null) return []
    const statement = line.replace(/;$/, '')
    return [
      {
        table: match[2]!,
        name: match[1]!,
        statement,
        statementSha256: createHash('sha256').update(statement, 'utf8').digest('hex'),
      },
    ]
  })
}

/** An SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1). */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`

/**
 * The policy SQL of `renderPolicySql` with every `CREATE POLICY` moved into one DO block that
 * creates each policy and records it (see the top of this file). The migration step applies this
 * instead of the bare SQL, as the tables' owner, in one transaction:
 * ```sql
 * ALTER TABLE "posts" ENABLE ROW LEVEL SECURITY;
 * ALTER TABLE "posts" FORCE ROW LEVEL SECURITY;
 * DROP POLICY IF EXISTS keyhole_select ON "posts";
 * …
 * DO $keyhole$
 * DECLARE
 *   policy text[];
 *   definition text;
 * BEGIN
 *   FOREACH policy SLICE 1 IN ARRAY ARRAY[
 *     ['"posts"', 'keyhole_select', 'CREATE POLICY keyhole_select ON "posts" AS PERMISSIVE FOR SELECT TO "app_runtime" USING (…)']
 *   ]::text[] LOOP
 *     EXECUTE policy[3];
 *     SELECT <the definition digest> INTO definition FROM pg_catalog.pg_policy AS p
 *       WHERE p.polrelid = policy[1]::pg_catalog.regclass AND p.polname = policy[2];
 *     EXECUTE pg_catalog.format('COMMENT ON POLICY %I ON %s IS %L', policy[2], policy[1]::pg_catalog.regclass,
 *       'keyhole-policy v1 statement:' || <SHA-256 of policy[3]> || ' definition:' || definition);
 *   END LOOP;
 * END
 * $keyhole$;
 * ```
 * @throws ConfigurationError as `renderPolicySql`.
 */
export function renderRecordedPolicySql(policies: Policies, options: ExpectedPolicyOptions) {
  const sql = renderPolicySql(policies, { role: options.role, groupIdType: options.groupIdType })
  const expected = expectedPolicies(policies, options)
  const kept = sql.split('\n').filter((line) => !CREATE.test(line))
  if (expected.length === 0) return kept.join('\n')
  const rows = expected.map(
    (p) => `    [${literal(p.table)}, ${literal(p.name)}, ${literal(p.statement)}]`,
  )
  return `${kept.join('\n').trimEnd()}
-- keyhole's policies, each created and recorded on itself for the start-up checks (checkDatabase).
DO $keyhole$
DECLARE
  policy text[];
  definition text;
BEGIN
  FOREACH policy SLICE 1 IN ARRAY ARRAY[
${rows.join(',\n')}
  ]::text[] LOOP
    EXECUTE policy[3];
    SELECT ${POLICY_DEFINITION_SQL} INTO definition
    FROM pg_catalog.pg_policy AS p
    WHERE p.polrelid = policy[1]::pg_catalog.regclass AND p.polname = policy[2];
    EXECUTE pg_catalog.format('COMMENT ON POLICY %I ON %s IS %L', policy[2],
      policy[1]::pg_catalog.regclass, 'keyhole-policy v1 statement:'
        || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(policy[3], 'UTF8')), 'hex')
        || ' definition:' || definition);
  END LOOP;
END
$keyhole$;
`
}
