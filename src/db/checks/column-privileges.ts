import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'

interface HeldRow {
  n: number
  table: string
  column: string
  /** 'table': a table-level grant (it reaches every column); 'column': a grant on this column. */
  level: 'table' | 'column'
  /** The role granted (the runtime role, a role it is a member of) or PUBLIC. */
  grantee: string
  runtime: boolean
  privileges: string[]
}

interface MissingRow {
  table: string
  privilege: string
  columns: string[]
}

const reapply =
  "apply keyhole's generated policy SQL again (keyhole migrate, or applyPolicies): it replaces the runtime role's table-level SELECT, INSERT and UPDATE by grants of every column but the hidden ones"

/** How to take one way of holding the privileges away, as SQL (or keyhole's step). */
function repair(row: HeldRow, table: string, runtime: string): string {
  const privileges = row.privileges.join(', ')
  const grantee = row.grantee === 'PUBLIC' ? 'PUBLIC' : ident(row.grantee)
  if (row.level === 'column') {
    return `REVOKE ${privileges} (${ident(row.column)}) ON ${table} FROM ${grantee};`
  }
  if (row.runtime) return reapply
  if (row.grantee === 'PUBLIC') return `REVOKE ${privileges} ON ${table} FROM PUBLIC;`
  return `REVOKE ${grantee} FROM ${ident(runtime)}; (keyhole setup revokes every membership of the runtime role)`
}

/**
 * Check 4b: the database layer of hidden columns (`columns: { hidden }` in the policies, or the
 * `hiddenColumns` option), on tables the runtime role does not own (the owner holds every
 * privilege: checks 2 and 3 report that).
 * - KH_DB_COLUMN_PRIVILEGE: the runtime role holds SELECT, INSERT, UPDATE or REFERENCES on a
 *   hidden column, by a table-level grant (which reaches every column) or a column grant, made to
 *   it, to a role it is a member of (inherited or not: it may SET ROLE), or to PUBLIC. keyhole's
 *   statements never name a hidden column, but SQL run as the runtime role (an injection) would
 *   read or write it.
 * - KH_DB_COLUMN_NOT_GRANTED: on a guarded table where the runtime role holds SELECT, INSERT or
 *   UPDATE on some columns only, a column that is not hidden lacks it: a column added after the
 *   policy SQL ran (it grants the columns it finds), or one no longer hidden. Statements naming it
 *   fail with 42501 until the policy SQL runs again.
 *
 * The generated SQL (then the columns missing a grant, with has_column_privilege):
 * ```sql
 * SELECT e.n, e.tab AS table, a.attname::text AS column, g.level, … AS grantee, g.grantee = $2::oid AS runtime,
 *   array_agg(DISTINCT g.privilege ORDER BY g.privilege) AS privileges
 * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (tab text, cols text[])) WITH ORDINALITY AS e(tab, cols, n)
 * JOIN pg_class c ON c.oid = to_regclass(e.tab) AND NOT pg_has_role(c.relowner, 'MEMBER')
 * JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = ANY (e.cols) AND a.attnum > 0 AND NOT a.attisdropped
 * CROSS JOIN LATERAL (SELECT 'table' AS level, x.grantee, x.privilege_type AS privilege FROM aclexplode(c.relacl) x
 *   UNION ALL SELECT 'column', x.grantee, x.privilege_type FROM aclexplode(a.attacl) x) g
 * WHERE g.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
 *   AND CASE WHEN g.grantee = 0 THEN true ELSE pg_has_role(g.grantee, 'MEMBER') END
 * GROUP BY …
 * ```
 */
export const checkColumnPrivileges: Check = async (context) => {
  const { db, options, runtime } = context
  const hidden = new Map(options.hiddenColumns.map((h) => [h.table, h.columns]))
  const tables = [
    ...new Set([
      ...context.tables.filter((t) => t.oid !== undefined).map((t) => t.name),
      ...hidden.keys(),
    ]),
  ].map((tab) => ({ tab, cols: hidden.get(tab) ?? [] }))
  if (tables.length === 0) return []
  const findings: DatabaseFinding[] = []
  const held =
    hidden.size === 0
      ? []
      : await rows<HeldRow>(
          db,
          `SELECT e.n, e.tab AS table, a.attname::text AS column, g.level,
       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee)::text END AS grantee,
       g.grantee = $2::oid AS runtime,
       array_agg(DISTINCT g.privilege ORDER BY g.privilege) AS privileges
     FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (tab text, cols text[])) WITH ORDINALITY AS e(tab, cols, n)
     JOIN pg_class c ON c.oid = to_regclass(e.tab) AND NOT pg_has_role(c.relowner, 'MEMBER')
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = ANY (e.cols)
       AND a.attnum > 0 AND NOT a.attisdropped
     CROSS JOIN LATERAL (
       SELECT 'table' AS level, x.grantee, x.privilege_type AS privilege FROM aclexplode(c.relacl) x
       UNION ALL
       SELECT 'column', x.grantee, x.privilege_type FROM aclexplode(a.attacl) x) g
     WHERE g.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
       AND CASE WHEN g.grantee = 0 THEN true ELSE pg_has_role(g.grantee, 'MEMBER') END
     GROUP BY e.n, e.tab, a.attnum, a.attname, g.level, g.grantee
     ORDER BY e.n, a.attnum, g.level DESC, 5`,
          [JSON.stringify(tables), runtime.oid],
        )
  const byColumn = new Map<string, HeldRow[]>()
  for (const row of held) {
    const key = `${row.table}\u0000${row.column}`
    byColumn.set(key, [...(byColumn.get(key) ?? []), row])
  }
  for (const list of byColumn.values()) {
    const { table, column } = list[0]!
    const privileges = [...new Set(list.flatMap((r) => r.privileges))].sort()
    const ways = list.map(
      (r) =>
        `${r.level === 'table' ? 'a table-level' : 'a column'} grant to ${r.runtime ? 'it' : r.grantee === 'PUBLIC' ? 'PUBLIC' : `${r.grantee}, a role it is a member of`}`,
    )
    findings.push(
      finding(
        'KH_DB_COLUMN_PRIVILEGE',
        `the runtime role ${runtime.name} holds ${privileges.join(', ')} on the hidden column ${column} of ${table} (${ways.join('; ')}): SQL run as the runtime role could read or write it`,
        [...new Set(list.map((r) => repair(r, table, runtime.name)))].join(' '),
      ),
    )
  }
  const missing = await rows<MissingRow>(
    db,
    `SELECT e.tab AS table, p.privilege, array_agg(a.attname::text ORDER BY a.attnum) AS columns
     FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (tab text, cols text[])) WITH ORDINALITY AS e(tab, cols, n)
     JOIN pg_class c ON c.oid = to_regclass(e.tab) AND NOT pg_has_role(c.relowner, 'MEMBER')
     CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) WITH ORDINALITY AS p(privilege, i)
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> ALL (e.cols)
     WHERE has_any_column_privilege(c.oid, p.privilege)
       AND NOT has_column_privilege(c.oid, a.attnum, p.privilege)
     GROUP BY e.n, e.tab, p.i, p.privilege
     ORDER BY e.n, p.i`,
    [JSON.stringify(tables)],
  )
  for (const row of missing) {
    const columns = row.columns.map(ident).join(', ')
    const grant = `GRANT ${row.privilege} (${columns}) ON ${row.table} TO ${ident(runtime.name)};`
    findings.push(
      finding(
        'KH_DB_COLUMN_NOT_GRANTED',
        `the runtime role ${runtime.name} holds ${row.privilege} on some columns of ${row.table} but not on ${columns}, not hidden (added after keyhole's column grants ran, or no longer hidden): statements naming ${row.columns.length === 1 ? 'it' : 'them'} fail with 42501`,
        hidden.has(row.table)
          ? `${reapply}; or ${grant}`
          : `GRANT ${row.privilege} ON ${row.table} TO ${ident(runtime.name)}; (the table hides no column now)`,
      ),
    )
  }
  return findings
}
