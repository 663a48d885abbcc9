/**
 * The database layer of column security: the runtime role holds no privilege on a hidden column
 * (`columns: { hidden }` in the policies). PostgreSQL ignores a column REVOKE while a table-level
 * grant stands, so a table with hidden columns trades the runtime role's table-level SELECT,
 * INSERT and UPDATE for column-level grants of every other column, read from the catalogue when
 * the SQL runs (the policies do not list every column).
 */
import { quoteIdentifier, quoteTable } from './identifier.ts'
import type { Policies, TablePolicy } from './policies.ts'

/** One table whose columns the runtime role may not reach. */
export interface HiddenColumns {
  /** The table as the policies name it: `users`, `app.users`. */
  readonly table: string
  /** The hidden columns, as declared. */
  readonly columns: readonly string[]
}

/** A table policy's hidden columns (`columns.hidden`), none when it declares none. */
export function hiddenOf(policy: TablePolicy): readonly string[] {
  return (
    (policy as { readonly columns?: { readonly hidden?: readonly string[] } }).columns?.hidden ?? []
  )
}

/** Every table of the policies with at least one hidden column, in the policies' order. */
export function hiddenColumnsOf(policies: Policies): HiddenColumns[] {
  return Object.entries(policies.tables).flatMap(([table, policy]) => {
    const columns = hiddenOf(policy)
    return columns.length === 0 ? [] : [{ table, columns }]
  })
}

/** An SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1). */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`

/**
 * The DO block that leaves `role` no privilege on the hidden columns of `tables` (each table as
 * SQL already quoted: `"app"."users"`), or '' when there are none. Per table, in one statement
 * each, idempotent:
 * 1. a hidden column the table does not have fails the whole script (a misspelt name would hide
 *    nothing);
 * 2. the privileges among SELECT, INSERT and UPDATE the role holds on the table or any of its
 *    columns are kept (what `keyhole setup` granted, or less), then
 * 3. its SELECT, INSERT, UPDATE and REFERENCES on the table and every column are revoked, and
 * 4. the kept ones granted on every column but the hidden ones, as they are now: a column added
 *    later has no grant until this runs again (`KH_DB_COLUMN_NOT_GRANTED`).
 *
 * DELETE stays a table-level grant (it names no column). Other roles' grants, and PUBLIC's, are
 * left alone: the start-up check `KH_DB_COLUMN_PRIVILEGE` reports any way the role still reaches
 * a hidden column.
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER` for a bad role or column name.
 */
export function columnGrantBlock(
  tables: readonly { readonly sql: string; readonly columns: readonly string[] }[],
  role: string,
): string {
  if (tables.length === 0) return ''
  const quotedRole = quoteIdentifier(role, 'role')
  const rows = tables.map((t) => {
    const columns = t.columns.map((c) => (quoteIdentifier(c, 'column'), literal(c)))
    return `    (${literal(t.sql)}::pg_catalog.regclass, ARRAY[${columns.join(', ')}]::pg_catalog.name[])`
  })
  return `-- The runtime role's column privileges: none on a hidden column (a column REVOKE does nothing
-- while a table-level grant stands, so every other column is granted on its own).
DO $keyhole$
DECLARE
  hidden record;
  missing text;
  others text;
  held text;
BEGIN
  FOR hidden IN SELECT * FROM (VALUES
${rows.join(',\n')}
  ) AS h (relation, columns) LOOP
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c.name), ', ') INTO missing
    FROM pg_catalog.unnest(hidden.columns) AS c (name)
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = hidden.relation
      AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
      RAISE EXCEPTION 'keyhole: the hidden column(s) % of % do not exist', missing, hidden.relation;
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO others
    FROM pg_catalog.pg_attribute a WHERE a.attrelid = hidden.relation AND a.attnum > 0
      AND NOT a.attisdropped AND a.attname <> ALL (hidden.columns);
    SELECT pg_catalog.string_agg(p.privilege || ' (' || others || ')', ', ' ORDER BY p.privilege)
    INTO held
    FROM (SELECT DISTINCT x.privilege_type AS privilege
      FROM (SELECT c.relacl AS acl FROM pg_catalog.pg_class c WHERE c.oid = hidden.relation
        UNION ALL SELECT a.attacl FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = hidden.relation AND a.attnum > 0 AND NOT a.attisdropped) AS acls,
        pg_catalog.aclexplode(acls.acl) AS x
      WHERE x.grantee = ${literal(quotedRole)}::pg_catalog.regrole
        AND x.privilege_type IN ('SELECT', 'INSERT', 'UPDATE')) AS p;
    EXECUTE pg_catalog.format('REVOKE SELECT, INSERT, UPDATE, REFERENCES ON %s FROM ${quotedRole}',
      hidden.relation);
    IF held IS NOT NULL THEN
      EXECUTE pg_catalog.format('GRANT %s ON %s TO ${quotedRole}', held, hidden.relation);
    END IF;
  END LOOP;
END
$keyhole$;
`
}

/**
 * The column grants the policies' hidden columns need, for the runtime role `role` ('' when no
 * table hides a column); part of every policy script keyhole renders (`renderPolicySql`,
 * `policySql`, `keyhole policies`, `keyhole migrate`). The generated SQL for
 * `{ users: { read: inGroup('group_id', 'member'), columns: { read: { member: ['id', 'name'] },
 * hidden: ['password_hash'] } } }` and the role `app_runtime`, pinned by
 * test/sql/statement-text.test.ts:
 * ```sql
 * DO $keyhole$
 * …
 *   FOR hidden IN SELECT * FROM (VALUES
 *     ('"users"'::pg_catalog.regclass, ARRAY['password_hash']::pg_catalog.name[])
 *   ) AS h (relation, columns) LOOP
 * …
 *     EXECUTE pg_catalog.format('REVOKE SELECT, INSERT, UPDATE, REFERENCES ON %s FROM "app_runtime"',
 *       hidden.relation);
 *     IF held IS NOT NULL THEN
 *       EXECUTE pg_catalog.format('GRANT %s ON %s TO "app_runtime"', held, hidden.relation);
 *     END IF;
 *   END LOOP;
 * END
 * $keyhole$;
 * ```
 * @throws ConfigurationError `KH_INVALID_IDENTIFIER` for a bad role or column name.
 */
export function renderColumnGrantSql(policies: Policies, role: string): string {
  return columnGrantBlock(
    hiddenColumnsOf(policies).map((h) => ({ sql: quoteTable(h.table).sql, columns: h.columns })),
    role,
  )
}
