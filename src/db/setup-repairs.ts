/**
 * What `setup` finds wrong before it applies a step: each finding the start-up checks would report
 * for the runtime role that the step corrects. Read on setup's own (privileged) connection from
 * the catalogs, just before the statement that repairs it, so a repair is reported only when the
 * state was really different. Descriptions name roles, schemas and tables, never a secret.
 */
import type { PgClient } from './pg-driver.ts'
import type { DatabaseFindingCode } from './checks/codes.ts'
import { powerfulPredefinedRoles } from './checks/memberships.ts'

/** One repair `setup` made: the start-up finding it corrects and what it changed. */
export interface SetupRepair {
  /** The code of the start-up finding the database had before (docs/errors.md lists them). */
  readonly code: DatabaseFindingCode
  /** One line naming what changed (a role, schema or table), never a secret. */
  readonly message: string
}

const roleAttributes: readonly [string, DatabaseFindingCode, string][] = [
  ['rolsuper', 'KH_DB_SUPERUSER', 'SUPERUSER'],
  ['rolbypassrls', 'KH_DB_BYPASSRLS', 'BYPASSRLS'],
  ['rolcreaterole', 'KH_DB_CREATEROLE', 'CREATEROLE'],
  ['rolcreatedb', 'KH_DB_CREATEDB', 'CREATEDB'],
  ['rolreplication', 'KH_DB_REPLICATION', 'REPLICATION'],
]

/**
 * The runtime role's attributes setup is about to remove, or undefined when the role does not
 * exist yet (setup creates it).
 *
 * ```sql
 * SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles WHERE rolname = $1
 * ```
 */
export async function attributeRepairs(
  client: PgClient,
  role: string,
): Promise<SetupRepair[] | undefined> {
  const { rows } = await client.query<Record<string, boolean>>(
    `SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication
     FROM pg_roles WHERE rolname = $1`,
    [role],
  )
  if (rows.length === 0) return undefined
  return roleAttributes
    .filter(([column]) => rows[0]![column])
    .map(([, code, attribute]) => ({
      code,
      message: `removed ${attribute} from the runtime role "${role}"`,
    }))
}

/**
 * The repair of revoking the runtime role's membership in `member`: a role with a power
 * (KH_DB_POWERFUL_MEMBERSHIP) or one that owns the migration role's objects or is that role
 * (KH_DB_MEMBER_OF_OWNER). A membership in a role with neither is revoked too, but it is no finding.
 *
 * ```sql
 * SELECT r.rolsuper OR r.rolbypassrls OR … OR r.rolname = ANY($2) AS powerful,
 *   r.rolname = $3 OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid AND n.nspname = ANY($4)) AS owner
 * FROM pg_roles r WHERE r.rolname = $1
 * ```
 */
export async function membershipRepair(
  client: PgClient,
  member: string,
  runtime: string,
  migration: string,
  schemas: readonly string[],
): Promise<SetupRepair | undefined> {
  const { rows } = await client.query<{ powerful: boolean; owner: boolean }>(
    `SELECT r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
         OR r.rolname = ANY($2) AS powerful,
       r.rolname = $3 OR EXISTS (SELECT 1 FROM pg_namespace n
         WHERE n.nspowner = r.oid AND n.nspname = ANY($4)) AS owner
     FROM pg_roles r WHERE r.rolname = $1`,
    [member, [...powerfulPredefinedRoles], migration, [...schemas, 'keyhole']],
  )
  const { powerful, owner } = rows[0]!
  const message = `revoked the runtime role "${runtime}"'s membership in "${member}"`
  if (powerful) return { code: 'KH_DB_POWERFUL_MEMBERSHIP', message }
  if (owner) return { code: 'KH_DB_MEMBER_OF_OWNER', message }
  return undefined
}

/**
 * CREATE and TEMPORARY on the database, and CREATE on the schemas and `keyhole`, held by PUBLIC or
 * the runtime role directly; on `public`, by PUBLIC (which setup revokes in any case) (an absent ACL is the built-in default, which gives PUBLIC TEMPORARY on a database).
 *
 * ```sql
 * SELECT 'database' AS kind, d.datname AS name, a.privilege_type, a.grantee = 0 AS public
 * FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
 * WHERE d.datname = current_database() AND a.grantee IN (0, $1::regrole) AND a.privilege_type IN ('CREATE', 'TEMPORARY')
 * UNION ALL SELECT 'schema', n.nspname, … FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
 * WHERE a.privilege_type = 'CREATE' AND (n.nspname = ANY($2) AND a.grantee IN (0, $1::regrole) OR n.nspname = 'public' AND a.grantee = 0)
 * ```
 */
export async function createRepairs(
  client: PgClient,
  runtime: string,
  schemas: readonly string[],
): Promise<SetupRepair[]> {
  const { rows } = await client.query<{
    kind: string
    name: string
    privilege: string
    public: boolean
  }>(
    `SELECT 'database' AS kind, d.datname::text AS name, a.privilege_type AS privilege,
       a.grantee = 0 AS public
     FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
     WHERE d.datname = current_database() AND a.grantee IN (0, $1::regrole)
       AND a.privilege_type IN ('CREATE', 'TEMPORARY')
     UNION ALL
     SELECT 'schema', n.nspname::text, a.privilege_type, a.grantee = 0
     FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
     WHERE a.privilege_type = 'CREATE' AND (n.nspname = ANY($2) AND a.grantee IN (0, $1::regrole)
       OR n.nspname = 'public' AND a.grantee = 0)
     ORDER BY 1, 2, 3, 4`,
    [runtime, [...schemas, 'keyhole']],
  )
  return rows.map((row) => ({
    code:
      row.kind === 'schema'
        ? 'KH_DB_SCHEMA_CREATE'
        : row.privilege === 'CREATE'
          ? 'KH_DB_DATABASE_CREATE'
          : 'KH_DB_DATABASE_TEMP',
    message: `revoked ${row.privilege} on ${row.kind} "${row.name}" from ${row.public ? 'PUBLIC' : `the runtime role "${runtime}"`}`,
  }))
}

/**
 * Privileges on the tables and views of `schemas` that setup revokes from the runtime role:
 * anything beyond SELECT, INSERT, UPDATE and DELETE (KH_DB_TABLE_PRIVILEGE), and any grant option
 * (KH_DB_GRANT_OPTION); in `keyhole` (asked for on its own, after keyhole's SQL ran), any privilege
 * of the runtime role or PUBLIC (on `keyhole.signing_key`: KH_DB_SIGNING_KEY_READABLE).
 *
 * ```sql
 * SELECT n.nspname, c.relname, a.privilege_type, a.is_grantable
 * FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
 * WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY($2) AND a.grantee = $1::regrole
 * ```
 */
export async function tablePrivilegeRepairs(
  client: PgClient,
  runtime: string,
  schemas: readonly string[],
): Promise<SetupRepair[]> {
  const { rows } = await client.query<{
    schema: string
    table: string
    privileges: string[]
    grantable: boolean
  }>(
    `SELECT n.nspname::text AS schema, c.relname::text AS table,
       array_agg(DISTINCT a.privilege_type) FILTER (WHERE
         n.nspname = 'keyhole' OR a.privilege_type NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))
         AS privileges,
       bool_or(a.is_grantable) AS grantable
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY($2)
       AND (a.grantee = $1::regrole OR (n.nspname = 'keyhole' AND a.grantee = 0))
     GROUP BY 1, 2 ORDER BY 1, 2`,
    [runtime, schemas],
  )
  const repairs: SetupRepair[] = []
  for (const row of rows) {
    const table = `"${row.schema}"."${row.table}"`
    if (row.privileges !== null) {
      repairs.push({
        code:
          row.schema === 'keyhole' && row.table === 'signing_key'
            ? 'KH_DB_SIGNING_KEY_READABLE'
            : 'KH_DB_TABLE_PRIVILEGE',
        message: `revoked ${row.privileges.join(', ')} on ${table} from the runtime role "${runtime}"${row.schema === 'keyhole' ? ' or PUBLIC' : ''}`,
      })
    }
    if (row.grantable) {
      repairs.push({
        code: 'KH_DB_GRANT_OPTION',
        message: `revoked the grant option on ${table} from the runtime role "${runtime}"`,
      })
    }
  }
  return repairs
}

/**
 * pg_stat_statements' view readable by the runtime role (directly or through PUBLIC).
 *
 * ```sql
 * SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 * WHERE e.extname = 'pg_stat_statements'
 *   AND has_table_privilege($1::regrole, to_regclass(format('%I.pg_stat_statements', n.nspname)), 'SELECT')
 * ```
 */
export async function statementStatsRepairs(
  client: PgClient,
  runtime: string,
): Promise<SetupRepair[]> {
  const { rows } = await client.query<{ schema: string }>(
    `SELECT n.nspname::text AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements'
       AND has_table_privilege($1::regrole, to_regclass(format('%I.pg_stat_statements', n.nspname)), 'SELECT')`,
    [runtime],
  )
  return rows.map(({ schema }) => ({
    code: 'KH_DB_STATEMENT_STATS_READABLE',
    message: `revoked "${schema}".pg_stat_statements from PUBLIC and the runtime role "${runtime}"`,
  }))
}
