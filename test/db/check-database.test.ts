/**
 * Every start-up finding, the same way: from the correct baseline, break one thing as the
 * superuser, see checkDatabase (connected as the runtime role) report exactly that code, fix it,
 * see the check pass. Where one break necessarily causes another finding too, `expect` lists both
 * and says why.
 */
import t from 'tap'
import pg from 'pg'
import {
  checkDatabase,
  databaseFindingCodes,
  type CheckDatabaseOptions,
} from '../../src/db/check-database.ts'
import { renderRecordedPolicySql } from '../../src/db/policy-sql.ts'
import { inGroup, viaParent } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { createBaseline, guard, policySql } from '../helpers/roles.ts'

const db = await createTestDatabase(t)
const base = await createBaseline(db)
const r = `"${base.runtime.name}"`
const m = `"${base.migrator.name}"`
const P = db.prefix

// The baseline's policies as the application defines them, applied as the migration applies
// them: generated and recorded (the hand-written ones of the helper are replaced).
const member = inGroup('group_id', 'member')
const policies = definePolicies({
  'app.posts': {
    read: member,
    insert: member,
    update: member,
    delete: member,
    system: ['read', 'delete'],
  },
  'app.comments': {
    read: viaParent(
      { table: 'app.posts', key: 'id', column: 'post_id', groupColumn: 'group_id' },
      'member',
    ),
    insert: member,
  },
})
const recorded = renderRecordedPolicySql(policies, { role: base.runtime.name, groupIdType: 'uuid' })
await base.sql(recorded)

/** Runs checkDatabase on a fresh runtime session (after `session` statements, if any). */
async function check(options: CheckDatabaseOptions = base.options, session = '') {
  const client = new pg.Client({ connectionString: base.runtimeUrl })
  await client.connect()
  try {
    if (session) await client.query(session)
    return await checkDatabase(client, options)
  } finally {
    await client.end()
  }
}

const codes = (findings: readonly { code: string }[]) =>
  [...new Set(findings.map((f) => f.code))].sort()

interface Case {
  name: string
  break: string
  fix: string
  expect?: string[]
  /** Options for the broken and the fixed state (default: the baseline's). */
  options?: CheckDatabaseOptions
  fixOptions?: CheckDatabaseOptions
  session?: string
  /** Drops what the break added, once the fix has been seen to pass. */
  cleanup?: string
}

const withOptions = (extra: Partial<CheckDatabaseOptions>): CheckDatabaseOptions => ({
  ...base.options,
  ...extra,
})

/** Forced row-level security and the runtime role's policies for `operations` on a table. */
const rlsSql = (table: string, operations: string[]) =>
  `ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY; ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;
   ${operations.map((op) => policySql(table, op, base.runtime.name)).join('\n')}`

/** A guarded partitioned table with a sub-partitioned partition (add leaves to app.events_a). */
const eventsSql = `CREATE TABLE app.events (group_id uuid NOT NULL, at int NOT NULL) PARTITION BY RANGE (at);
  ${rlsSql('app.events', ['select'])}
  CREATE TABLE app.events_a PARTITION OF app.events FOR VALUES FROM (0) TO (10) PARTITION BY RANGE (at);`
const withEvents = withOptions({
  guardedTables: [...base.options.guardedTables, { table: 'app.events', operations: ['select'] }],
})

const withPolicies = withOptions({ policies })
const guardMode = withOptions({ mode: 'guard' })

const cases: Record<string, Case[]> = {
  KH_DB_SUPERUSER: [
    { name: 'SUPERUSER', break: `ALTER ROLE ${r} SUPERUSER`, fix: `ALTER ROLE ${r} NOSUPERUSER` },
  ],
  KH_DB_BYPASSRLS: [
    { name: 'BYPASSRLS', break: `ALTER ROLE ${r} BYPASSRLS`, fix: `ALTER ROLE ${r} NOBYPASSRLS` },
  ],
  KH_DB_CREATEROLE: [
    {
      name: 'CREATEROLE',
      break: `ALTER ROLE ${r} CREATEROLE`,
      fix: `ALTER ROLE ${r} NOCREATEROLE`,
    },
  ],
  KH_DB_CREATEDB: [
    { name: 'CREATEDB', break: `ALTER ROLE ${r} CREATEDB`, fix: `ALTER ROLE ${r} NOCREATEDB` },
  ],
  KH_DB_REPLICATION: [
    {
      name: 'REPLICATION',
      break: `ALTER ROLE ${r} REPLICATION`,
      fix: `ALTER ROLE ${r} NOREPLICATION`,
    },
  ],
  KH_DB_POWERFUL_MEMBERSHIP: [
    {
      name: 'member of a CREATEDB role, through another role',
      break: `CREATE ROLE ${P}_inner NOLOGIN CREATEDB; CREATE ROLE ${P}_outer NOLOGIN;
              GRANT ${P}_inner TO ${P}_outer; GRANT ${P}_outer TO ${r}`,
      fix: `REVOKE ${P}_outer FROM ${r}`,
      cleanup: `DROP ROLE ${P}_outer; DROP ROLE ${P}_inner`,
    },
    {
      name: 'member of pg_read_all_data',
      break: `GRANT pg_read_all_data TO ${r}`,
      fix: `REVOKE pg_read_all_data FROM ${r}`,
      // pg_read_all_data reads every table: the signing key too.
      expect: ['KH_DB_POWERFUL_MEMBERSHIP', 'KH_DB_SIGNING_KEY_READABLE'],
    },
    {
      name: "member of pg_signal_backend (it could end other roles' sessions)",
      break: `GRANT pg_signal_backend TO ${r}`,
      fix: `REVOKE pg_signal_backend FROM ${r}`,
    },
    {
      name: "member of pg_monitor (every session's statement text, every statistic)",
      break: `GRANT pg_monitor TO ${r}`,
      fix: `REVOKE pg_monitor FROM ${r}`,
    },
  ],
  KH_DB_MEMBER_OF_OWNER: [
    {
      name: 'member of the migration role, inheriting its privileges',
      break: `GRANT ${m} TO ${r}`,
      fix: `REVOKE ${m} FROM ${r}`,
      // Inheriting the owner's privileges also means CREATE in its schemas and the signing key.
      expect: ['KH_DB_MEMBER_OF_OWNER', 'KH_DB_SCHEMA_CREATE', 'KH_DB_SIGNING_KEY_READABLE'],
    },
    {
      name: 'member of the migration role without INHERIT (SET ROLE still works)',
      break: `GRANT ${m} TO ${r} WITH INHERIT FALSE`,
      fix: `REVOKE ${m} FROM ${r}`,
    },
    {
      name: 'member of the owner of a guarded table that is not the migration role',
      break: `CREATE ROLE ${P}_owner NOLOGIN; ALTER TABLE app.comments OWNER TO ${P}_owner;
              GRANT ${P}_owner TO ${r} WITH INHERIT FALSE`,
      fix: `REVOKE ${P}_owner FROM ${r}; ALTER TABLE app.comments OWNER TO ${m};
            GRANT SELECT, INSERT ON app.comments TO ${r}`,
      cleanup: `DROP ROLE ${P}_owner`,
    },
  ],
  KH_DB_GUARDED_TABLE_MISSING: [
    {
      name: 'a guarded table was renamed',
      break: `ALTER TABLE app.comments RENAME TO comments_old`,
      fix: `ALTER TABLE app.comments_old RENAME TO comments`,
    },
    {
      name: 'a guarded "table" is a view',
      break: `CREATE VIEW app.v WITH (security_invoker) AS SELECT 1 AS x`,
      fix: '',
      options: withOptions({
        guardedTables: [...base.options.guardedTables, { table: 'app.v', operations: ['select'] }],
      }),
      fixOptions: base.options,
      cleanup: 'DROP VIEW app.v',
    },
  ],
  KH_DB_OWNS_GUARDED_TABLE: [
    {
      name: 'the runtime role owns a guarded table',
      break: `ALTER TABLE app.posts OWNER TO ${r}`,
      fix: `ALTER TABLE app.posts OWNER TO ${m}; GRANT SELECT, INSERT, UPDATE, DELETE ON app.posts TO ${r};
            GRANT USAGE, SELECT ON SEQUENCE app.posts_id_seq TO ${r}`,
    },
  ],
  KH_DB_RLS_DISABLED: [
    {
      name: 'RLS disabled',
      break: 'ALTER TABLE app.posts DISABLE ROW LEVEL SECURITY',
      fix: 'ALTER TABLE app.posts ENABLE ROW LEVEL SECURITY',
    },
  ],
  KH_DB_RLS_NOT_FORCED: [
    {
      name: 'RLS not forced',
      break: 'ALTER TABLE app.comments NO FORCE ROW LEVEL SECURITY',
      fix: 'ALTER TABLE app.comments FORCE ROW LEVEL SECURITY',
    },
  ],
  KH_DB_GUARD_MODE_UNDER_RLS: [
    {
      name: "'guard' mode against forced RLS: no capability is ever set, every row refused",
      break: '',
      options: guardMode,
      fix: `ALTER TABLE app.posts DISABLE ROW LEVEL SECURITY;
            ALTER TABLE app.comments DISABLE ROW LEVEL SECURITY`,
      fixOptions: guardMode,
      cleanup: `ALTER TABLE app.posts ENABLE ROW LEVEL SECURITY;
                ALTER TABLE app.comments ENABLE ROW LEVEL SECURITY`,
    },
    {
      name: "'guard' mode, RLS enabled but not forced (it still applies to a role that owns nothing)",
      break: `ALTER TABLE app.posts NO FORCE ROW LEVEL SECURITY;
              ALTER TABLE app.comments DISABLE ROW LEVEL SECURITY`,
      options: guardMode,
      fix: 'ALTER TABLE app.posts DISABLE ROW LEVEL SECURITY',
      cleanup: `ALTER TABLE app.posts ENABLE ROW LEVEL SECURITY; ALTER TABLE app.posts FORCE ROW LEVEL SECURITY;
                ALTER TABLE app.comments ENABLE ROW LEVEL SECURITY`,
    },
  ],
  KH_DB_TABLE_PRIVILEGE: [
    {
      name: 'TRUNCATE',
      break: `GRANT TRUNCATE ON app.posts TO ${r}`,
      fix: `REVOKE TRUNCATE ON app.posts FROM ${r}`,
    },
    {
      name: 'REFERENCES',
      break: `GRANT REFERENCES ON app.posts TO ${r}`,
      fix: `REVOKE REFERENCES ON app.posts FROM ${r}`,
    },
    {
      name: 'REFERENCES on one column',
      break: `GRANT REFERENCES (id) ON app.comments TO ${r}`,
      fix: `REVOKE REFERENCES (id) ON app.comments FROM ${r}`,
    },
    {
      name: 'TRIGGER',
      break: `GRANT TRIGGER ON app.posts TO ${r}`,
      fix: `REVOKE TRIGGER ON app.posts FROM ${r}`,
    },
  ],
  KH_DB_GRANT_OPTION: [
    {
      name: 'SELECT WITH GRANT OPTION',
      break: `GRANT SELECT ON app.posts TO ${r} WITH GRANT OPTION`,
      fix: `REVOKE GRANT OPTION FOR SELECT ON app.posts FROM ${r}`,
    },
    {
      name: 'UPDATE on one column WITH GRANT OPTION',
      break: `GRANT UPDATE (title) ON app.posts TO ${r} WITH GRANT OPTION`,
      fix: `REVOKE GRANT OPTION FOR UPDATE (title) ON app.posts FROM ${r}`,
    },
    {
      name: 'DELETE WITH GRANT OPTION',
      break: `GRANT DELETE ON app.posts TO ${r} WITH GRANT OPTION`,
      fix: `REVOKE GRANT OPTION FOR DELETE ON app.posts FROM ${r}`,
    },
  ],
  KH_DB_SCHEMA_CREATE: [
    {
      name: 'CREATE on an application schema',
      break: `GRANT CREATE ON SCHEMA app TO ${r}`,
      fix: `REVOKE CREATE ON SCHEMA app FROM ${r}`,
    },
    {
      name: 'CREATE on public (search_path)',
      break: `GRANT CREATE ON SCHEMA public TO PUBLIC`,
      fix: `REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
    },
    {
      name: 'CREATE on a schema outside the search_path and the options',
      break: `CREATE SCHEMA ${P}_other; GRANT USAGE, CREATE ON SCHEMA ${P}_other TO ${r}`,
      fix: `REVOKE CREATE ON SCHEMA ${P}_other FROM ${r}`,
      cleanup: `DROP SCHEMA ${P}_other`,
    },
    {
      name: 'CREATE on a schema the runtime role cannot even use',
      break: `CREATE SCHEMA ${P}_hidden; GRANT CREATE ON SCHEMA ${P}_hidden TO PUBLIC`,
      fix: `REVOKE CREATE ON SCHEMA ${P}_hidden FROM PUBLIC`,
      cleanup: `DROP SCHEMA ${P}_hidden`,
    },
    {
      name: 'CREATE on keyhole',
      break: `GRANT CREATE ON SCHEMA keyhole TO ${r}`,
      fix: `REVOKE CREATE ON SCHEMA keyhole FROM ${r}`,
    },
  ],
  KH_DB_DATABASE_CREATE: [
    {
      name: 'CREATE on the database',
      break: `GRANT CREATE ON DATABASE ${db.name} TO ${r}`,
      fix: `REVOKE CREATE ON DATABASE ${db.name} FROM ${r}`,
    },
  ],
  KH_DB_DATABASE_TEMP: [
    {
      name: "TEMPORARY on the database, granted to PUBLIC (PostgreSQL's default)",
      break: `GRANT TEMPORARY ON DATABASE ${db.name} TO PUBLIC`,
      fix: `REVOKE TEMPORARY ON DATABASE ${db.name} FROM PUBLIC`,
    },
    {
      name: 'TEMPORARY on the database, granted to the runtime role',
      break: `GRANT TEMPORARY ON DATABASE ${db.name} TO ${r}`,
      fix: `REVOKE TEMPORARY ON DATABASE ${db.name} FROM ${r}`,
    },
  ],
  KH_DB_POLICY_MISSING: [
    {
      name: 'no DELETE policy',
      break: 'DROP POLICY keyhole_delete ON app.posts',
      fix: policySql('app.posts', 'delete', base.runtime.name),
    },
    {
      name: 'the only SELECT policy is for another role',
      break: `DROP POLICY keyhole_select ON app.comments;
              CREATE POLICY keyhole_select ON app.comments FOR SELECT TO ${m} USING ${guard('member')}`,
      fix: `DROP POLICY keyhole_select ON app.comments; ${policySql('app.comments', 'select', base.runtime.name)}`,
    },
    {
      name: 'a SELECT policy without USING grants nothing',
      break: `DROP POLICY keyhole_select ON app.posts; CREATE POLICY keyhole_select ON app.posts FOR SELECT TO ${r}`,
      fix: `DROP POLICY keyhole_select ON app.posts; ${policySql('app.posts', 'select', base.runtime.name)}`,
    },
    {
      name: 'an INSERT policy without WITH CHECK grants nothing',
      break: `DROP POLICY keyhole_insert ON app.posts; CREATE POLICY keyhole_insert ON app.posts FOR INSERT TO ${r}`,
      fix: `DROP POLICY keyhole_insert ON app.posts; ${policySql('app.posts', 'insert', base.runtime.name)}`,
    },
    {
      name: 'a restrictive policy does not grant',
      break: `DROP POLICY keyhole_insert ON app.comments;
              CREATE POLICY keyhole_insert ON app.comments AS RESTRICTIVE FOR INSERT TO ${r} WITH CHECK ${guard('member')}`,
      fix: `DROP POLICY keyhole_insert ON app.comments; ${policySql('app.comments', 'insert', base.runtime.name)}`,
    },
  ],
  KH_DB_POLICY_ALWAYS_TRUE: [
    {
      name: 'the guard OR subject() IS NULL (true for the anonymous)',
      break: `CREATE POLICY open ON app.posts FOR SELECT TO ${r}
                USING (${guard('member')} OR (SELECT keyhole.subject()) IS NULL)`,
      fix: 'DROP POLICY open ON app.posts',
    },
    {
      name: 'the guard OR NOT is_admin() (true for everyone but the admin)',
      break: `CREATE POLICY open ON app.posts FOR SELECT TO ${r}
                USING (${guard('member')} OR NOT (SELECT keyhole.is_admin()))`,
      fix: 'DROP POLICY open ON app.posts',
    },
    {
      name: 'a string literal that mentions keyhole.is_admin(',
      break: `CREATE POLICY open ON app.posts FOR SELECT TO ${r}
                USING (${guard('member')} OR title <> 'keyhole.is_admin(')`,
      fix: 'DROP POLICY open ON app.posts',
    },
    {
      name: 'USING (true)',
      break: `CREATE POLICY open ON app.posts FOR SELECT TO ${r} USING (true)`,
      fix: 'DROP POLICY open ON app.posts',
    },
    {
      name: 'true OR the guard',
      break: `CREATE POLICY open ON app.posts FOR SELECT TO ${r} USING (true OR (SELECT keyhole.is_admin()))`,
      fix: 'DROP POLICY open ON app.posts',
    },
    {
      name: 'the guard OR 1 = 1, on a command keyhole does not perform',
      break: `CREATE POLICY open ON app.comments FOR DELETE TO ${r} USING (${guard('member')} OR 1 = 1)`,
      fix: 'DROP POLICY open ON app.comments',
    },
    {
      name: 'WITH CHECK on a column only',
      break: `CREATE POLICY open ON app.posts FOR INSERT TO ${r} WITH CHECK (title <> '')`,
      fix: 'DROP POLICY open ON app.posts',
    },
    {
      name: 'an ALL policy without WITH CHECK whose USING is true',
      break: `CREATE POLICY open ON app.comments TO ${r} USING (true)`,
      fix: 'DROP POLICY open ON app.comments',
    },
    {
      name: "a look-alike is_admin() that is not keyhole's",
      break: `CREATE FUNCTION public.is_admin() RETURNS boolean LANGUAGE sql AS 'SELECT true';
              CREATE POLICY open ON app.posts FOR SELECT TO ${r} USING ((SELECT public.is_admin()))`,
      fix: 'DROP POLICY open ON app.posts; DROP FUNCTION public.is_admin()',
    },
    {
      name: 'UPDATE checks new rows with true',
      break: `CREATE POLICY open ON app.posts FOR UPDATE TO ${r} USING ${guard('member')} WITH CHECK (true)`,
      fix: 'DROP POLICY open ON app.posts',
      // A WITH CHECK of true is also weaker than the USING.
      expect: ['KH_DB_POLICY_ALWAYS_TRUE', 'KH_DB_POLICY_WEAK_CHECK'],
    },
  ],
  KH_DB_POLICY_PUBLIC: [
    {
      name: 'a permissive policy TO PUBLIC',
      break: `CREATE POLICY everyone ON app.posts FOR SELECT TO PUBLIC USING ${guard('member')}`,
      fix: 'DROP POLICY everyone ON app.posts',
    },
  ],
  KH_DB_POLICY_WEAK_CHECK: [
    {
      name: 'UPDATE checks new rows against a lower role than old rows',
      break: `DROP POLICY keyhole_update ON app.posts;
              CREATE POLICY keyhole_update ON app.posts FOR UPDATE TO ${r}
                USING ${guard('moderator')} WITH CHECK ${guard('member')}`,
      fix: `DROP POLICY keyhole_update ON app.posts; ${policySql('app.posts', 'update', base.runtime.name)}`,
    },
    {
      name: 'an ALL policy whose WITH CHECK drops a term of its USING',
      break: `CREATE POLICY extra ON app.posts TO ${r}
                USING (${guard('member')} AND title <> '') WITH CHECK ${guard('admin')}`,
      fix: 'DROP POLICY extra ON app.posts',
    },
  ],
  KH_DB_POLICY_NOT_APPLIED: [
    {
      name: 'a policy the application defines is missing',
      break: `${recorded} DROP POLICY keyhole_delete ON app.posts`,
      fix: recorded,
      options: withPolicies,
      // Check 6 sees the DELETE the guarded tables name go uncovered too.
      expect: ['KH_DB_POLICY_MISSING', 'KH_DB_POLICY_NOT_APPLIED'],
    },
    {
      name: 'the same policy written by hand: no record, nothing to compare with',
      break: `${recorded} DROP POLICY keyhole_insert ON app.comments;
              ${policySql('app.comments', 'insert', base.runtime.name)}`,
      fix: recorded,
      options: withPolicies,
    },
    {
      name: 'applied from other definitions (the guard changed since the migration)',
      break: renderRecordedPolicySql(
        definePolicies({
          ...policies.tables,
          'app.posts': { ...policies.tables['app.posts'], read: inGroup('group_id', 'moderator') },
        }),
        { role: base.runtime.name, groupIdType: 'uuid' },
      ),
      fix: recorded,
      options: withPolicies,
    },
    {
      name: 'applied for a role the runtime role inherits, not for the runtime role',
      break: `CREATE ROLE ${P}_readers NOLOGIN; GRANT ${P}_readers TO ${r};
              ${renderRecordedPolicySql(policies, { role: `${P}_readers`, groupIdType: 'uuid' })}`,
      fix: recorded,
      options: withPolicies,
      cleanup: `REVOKE ${P}_readers FROM ${r}; DROP ROLE ${P}_readers`,
    },
    {
      name: 'applied with a wider system list than the application declares (update added)',
      break: renderRecordedPolicySql(
        definePolicies({
          ...policies.tables,
          'app.posts': { ...policies.tables['app.posts'], system: ['read', 'update', 'delete'] },
        }),
        { role: base.runtime.name, groupIdType: 'uuid' },
      ),
      fix: recorded,
      options: withPolicies,
    },
    {
      name: 'a table the application defines policies for is missing',
      break: 'ALTER TABLE app.comments RENAME TO comments_old',
      fix: 'ALTER TABLE app.comments_old RENAME TO comments',
      options: withPolicies,
      // It is a guarded table too.
      expect: ['KH_DB_GUARDED_TABLE_MISSING', 'KH_DB_POLICY_NOT_APPLIED'],
    },
  ],
  KH_DB_POLICY_ALTERED: [
    {
      name: 'OR true added to a USING',
      break: `${recorded} ALTER POLICY keyhole_select ON app.posts USING (${guard('member')} OR true)`,
      fix: recorded,
      options: withPolicies,
      // The text heuristic sees this one too.
      expect: ['KH_DB_POLICY_ALTERED', 'KH_DB_POLICY_ALWAYS_TRUE'],
    },
    {
      name: 'a widening the text heuristic cannot see (subject() = subject() holds for any holder)',
      break: `${recorded} ALTER POLICY keyhole_select ON app.posts
                USING (${guard('member')} OR (SELECT keyhole.subject()) = (SELECT keyhole.subject()))`,
      fix: recorded,
      options: withPolicies,
    },
    {
      name: 'another role added',
      break: `${recorded} ALTER POLICY keyhole_insert ON app.posts TO ${r}, ${m}`,
      fix: recorded,
      options: withPolicies,
    },
    {
      name: 'a system branch added by hand where the application declares none',
      break: `${recorded} ALTER POLICY keyhole_insert ON app.posts
                WITH CHECK (${guard('member')} OR (SELECT keyhole.system_allows('app.posts', 'insert')))`,
      fix: recorded,
      options: withPolicies,
    },
    {
      name: 'a narrower role in the same statement shape still differs',
      break: `${recorded} ALTER POLICY keyhole_delete ON app.posts USING ${guard('moderator')}`,
      fix: recorded,
      options: withPolicies,
    },
  ],
  KH_DB_POLICY_UNEXPECTED: [
    {
      name: 'an extra permissive policy that reads the capability',
      break: `${recorded} CREATE POLICY extra ON app.posts FOR SELECT TO ${r} USING ${guard('admin')}`,
      fix: 'DROP POLICY extra ON app.posts',
      options: withPolicies,
    },
    {
      name: 'a system-only policy on a table that declares no system operation',
      break: `${recorded} CREATE POLICY keyhole_system ON app.comments FOR DELETE TO ${r}
                USING ((SELECT keyhole.system_allows('app.comments', 'delete')))`,
      fix: 'DROP POLICY keyhole_system ON app.comments',
      options: withPolicies,
    },
    {
      name: 'a policy for an operation the application leaves out',
      break: `${recorded} ${policySql('app.comments', 'delete', base.runtime.name)}`,
      fix: 'DROP POLICY keyhole_delete ON app.comments',
      options: withPolicies,
    },
  ],
  KH_DB_VIEW_OWNER_RIGHTS: [
    {
      name: "a view over a guarded table with its owner's rights",
      break: `CREATE VIEW app.posts_view AS SELECT * FROM app.posts; ALTER VIEW app.posts_view OWNER TO ${m};
              GRANT SELECT ON app.posts_view TO ${r}`,
      fix: 'ALTER VIEW app.posts_view SET (security_invoker = on)',
      cleanup: 'DROP VIEW app.posts_view',
    },
    {
      name: 'a view over an invoker view over a guarded table',
      break: `CREATE VIEW app.inner_view WITH (security_invoker) AS SELECT * FROM app.posts;
              CREATE VIEW app.outer_view AS SELECT * FROM app.inner_view;
              GRANT SELECT ON app.outer_view TO ${r}`,
      fix: `REVOKE SELECT ON app.outer_view FROM ${r}`,
      cleanup: 'DROP VIEW app.outer_view; DROP VIEW app.inner_view',
    },
    {
      name: 'a materialized view of a guarded table',
      break: `CREATE MATERIALIZED VIEW app.posts_copy AS SELECT * FROM app.posts;
              GRANT SELECT ON app.posts_copy TO ${r}`,
      fix: `REVOKE SELECT ON app.posts_copy FROM ${r}`,
      cleanup: 'DROP MATERIALIZED VIEW app.posts_copy',
    },
  ],
  KH_DB_STATEMENT_STATS_READABLE: [
    {
      name: 'pg_stat_statements installed with its default grants to PUBLIC',
      break: 'CREATE EXTENSION pg_stat_statements SCHEMA public',
      fix: `REVOKE SELECT ON public.pg_stat_statements, public.pg_stat_statements_info FROM PUBLIC;
            REVOKE EXECUTE ON FUNCTION public.pg_stat_statements(boolean),
              public.pg_stat_statements_info() FROM PUBLIC;
            GRANT SELECT ON public.pg_stat_statements, public.pg_stat_statements_info TO pg_read_all_stats`,
      cleanup: 'DROP EXTENSION pg_stat_statements',
    },
    {
      name: 'its views revoked, its function still executable',
      break: `CREATE SCHEMA "Stats"; GRANT USAGE ON SCHEMA "Stats" TO ${r};
              CREATE EXTENSION pg_stat_statements SCHEMA "Stats";
              REVOKE SELECT ON "Stats".pg_stat_statements FROM PUBLIC`,
      fix: 'REVOKE EXECUTE ON FUNCTION "Stats".pg_stat_statements(boolean) FROM PUBLIC',
      cleanup: 'DROP EXTENSION pg_stat_statements; DROP SCHEMA "Stats"',
    },
  ],
  KH_DB_SECURITY_DEFINER: [
    {
      name: 'a SECURITY DEFINER function anyone may execute',
      break: `CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM app.posts'`,
      fix: 'REVOKE EXECUTE ON FUNCTION public.peek() FROM PUBLIC',
      cleanup: 'DROP FUNCTION public.peek()',
    },
    {
      name: "a SECURITY DEFINER function in keyhole's schema that is not keyhole's",
      break: `CREATE FUNCTION keyhole.extra() RETURNS int LANGUAGE sql SECURITY DEFINER
                SET search_path = pg_catalog, pg_temp AS 'SELECT 1';
              ALTER FUNCTION keyhole.extra() OWNER TO ${m}`,
      fix: 'DROP FUNCTION keyhole.extra()',
    },
  ],
  KH_DB_KEYHOLE_FUNCTION_ALTERED: [
    {
      name: 'SECURITY INVOKER',
      break: 'ALTER FUNCTION keyhole.is_admin() SECURITY INVOKER',
      fix: 'ALTER FUNCTION keyhole.is_admin() SECURITY DEFINER',
    },
    {
      name: 'search_path reset',
      break: 'ALTER FUNCTION keyhole.subject() RESET search_path',
      fix: 'ALTER FUNCTION keyhole.subject() SET search_path = pg_catalog, pg_temp',
    },
    {
      name: 'search_path with public first',
      break: 'ALTER FUNCTION keyhole.group_ids(text) SET search_path = public, pg_catalog, pg_temp',
      fix: 'ALTER FUNCTION keyhole.group_ids(text) SET search_path = pg_catalog, pg_temp',
    },
    {
      name: 'another setting added',
      break: `ALTER FUNCTION keyhole.is_admin() SET row_security = off`,
      fix: 'ALTER FUNCTION keyhole.is_admin() RESET row_security',
    },
    {
      name: 'not executable by the runtime role',
      break: `REVOKE EXECUTE ON FUNCTION keyhole.sets_unique_key(regclass, name[]) FROM ${r}`,
      fix: `GRANT EXECUTE ON FUNCTION keyhole.sets_unique_key(regclass, name[]) TO ${r}`,
    },
    {
      name: 'owned by the runtime role',
      break: `ALTER FUNCTION keyhole.is_admin() OWNER TO ${r}`,
      // The runtime role's grant merged into its ownership, and left with it.
      fix: `ALTER FUNCTION keyhole.is_admin() OWNER TO ${m};
            GRANT EXECUTE ON FUNCTION keyhole.is_admin() TO ${r}`,
    },
    {
      name: 'owned by a superuser',
      break: 'ALTER FUNCTION keyhole.is_admin() OWNER TO CURRENT_USER',
      fix: `ALTER FUNCTION keyhole.is_admin() OWNER TO ${m}`,
    },
    {
      name: 'owned by a role other than the migration role',
      break: `CREATE ROLE ${P}_other NOLOGIN; ALTER FUNCTION keyhole.subject() OWNER TO ${P}_other`,
      fix: `ALTER FUNCTION keyhole.subject() OWNER TO ${m}`,
      cleanup: `DROP ROLE ${P}_other`,
    },
    {
      name: 'missing',
      break: '',
      fix: '',
      options: withOptions({
        keyholeFunctions: [
          'keyhole.set_capability(text)',
          'keyhole.group_ids(text)',
          'keyhole.is_admin()',
          'keyhole.subject()',
          'keyhole.set_system(text)',
          'keyhole.system_allows(text,text)',
          'keyhole.sets_unique_key(regclass,name[])',
          'keyhole.verify(text)',
        ],
      }),
    },
  ],
  KH_DB_LEAKPROOF: [
    {
      name: 'a user-defined LEAKPROOF function',
      break: `CREATE FUNCTION public.positive(int) RETURNS boolean LANGUAGE sql IMMUTABLE LEAKPROOF AS 'SELECT $1 > 0'`,
      fix: 'ALTER FUNCTION public.positive(int) NOT LEAKPROOF',
      cleanup: 'DROP FUNCTION public.positive(int)',
    },
  ],
  KH_DB_SETTING_PRESET: [
    {
      name: 'a role default',
      break: `ALTER ROLE ${r} SET keyhole.capability = 'forged'`,
      fix: `ALTER ROLE ${r} RESET keyhole.capability`,
    },
    {
      name: 'a database default',
      break: `ALTER DATABASE ${db.name} SET keyhole.capability = 'forged'`,
      fix: `ALTER DATABASE ${db.name} RESET keyhole.capability`,
    },
    {
      name: 'a default for the role in this database',
      break: `ALTER ROLE ${r} IN DATABASE ${db.name} SET "Keyhole.Capability" = 'forged'`,
      fix: `ALTER ROLE ${r} IN DATABASE ${db.name} RESET "Keyhole.Capability"`,
    },
    {
      name: 'set at session level',
      break: '',
      fix: '',
      session: `SET keyhole.capability = 'forged'`,
    },
    {
      name: 'a custom setting name',
      break: `ALTER ROLE ${r} SET app.capability = 'forged'`,
      fix: `ALTER ROLE ${r} RESET app.capability`,
      options: withOptions({ capabilitySetting: 'app.capability' }),
    },
  ],
  KH_DB_ROW_SECURITY_OFF: [
    {
      name: 'a role default (seen as a default and in the session)',
      break: `ALTER ROLE ${r} SET row_security = off`,
      fix: `ALTER ROLE ${r} RESET row_security`,
    },
    { name: 'off in the session', break: '', fix: '', session: 'SET row_security = off' },
  ],
  KH_DB_ROLE_SETTING: [
    {
      name: 'a default for the runtime role in every database (read-only transactions)',
      break: `ALTER ROLE ${r} SET default_transaction_read_only = on`,
      fix: `ALTER ROLE ${r} RESET default_transaction_read_only`,
    },
    {
      name: 'a default for the runtime role in this database',
      break: `ALTER ROLE ${r} IN DATABASE ${db.name} SET lock_timeout = '5min'`,
      fix: `ALTER ROLE ${r} IN DATABASE ${db.name} RESET lock_timeout`,
    },
    {
      name: 'a default for every role in this database',
      break: `ALTER DATABASE ${db.name} SET work_mem = '64kB'`,
      fix: `ALTER DATABASE ${db.name} RESET work_mem`,
    },
    {
      name: 'an allowed setting with another value than the allowed one',
      break: `ALTER ROLE ${r} SET statement_timeout = '5min'`,
      options: withOptions({ allowedSettings: { Statement_Timeout: '30s' } }),
      fix: `ALTER ROLE ${r} SET statement_timeout = '30s'`,
      cleanup: `ALTER ROLE ${r} RESET statement_timeout`,
    },
  ],
  KH_DB_SERVER_VERSION: [
    {
      name: 'below the minimum',
      break: '',
      fix: '',
      options: withOptions({ minimumServerVersion: 9990000 }),
    },
  ],
  KH_DB_UNGUARDED_TABLE: [
    {
      name: 'a readable table without RLS in an application schema',
      break: `CREATE TABLE app.notes (id int, group_id uuid); GRANT SELECT ON app.notes TO ${r}`,
      fix: rlsSql('app.notes', ['select']),
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS enabled but not forced',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', ['select'])}
              ALTER TABLE app.notes NO FORCE ROW LEVEL SECURITY; GRANT SELECT ON app.notes TO ${r}`,
      fix: 'ALTER TABLE app.notes FORCE ROW LEVEL SECURITY',
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS forced, but no policy for an operation the runtime role may perform',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', ['select'])}
              GRANT SELECT, INSERT ON app.notes TO ${r}`,
      fix: policySql('app.notes', 'insert', base.runtime.name),
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS forced, with an always-true policy',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', [])}
              CREATE POLICY open ON app.notes FOR SELECT TO ${r} USING (true);
              GRANT SELECT ON app.notes TO ${r}`,
      fix: `DROP POLICY open ON app.notes; ${policySql('app.notes', 'select', base.runtime.name)}`,
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS forced, with a policy TO PUBLIC',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', [])}
              CREATE POLICY keyhole_select ON app.notes FOR SELECT TO PUBLIC USING ${guard('member')};
              GRANT SELECT ON app.notes TO ${r}`,
      fix: `DROP POLICY keyhole_select ON app.notes; ${policySql('app.notes', 'select', base.runtime.name)}`,
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS forced, with an UPDATE policy that checks new rows less strictly',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', [])}
              CREATE POLICY keyhole_update ON app.notes FOR UPDATE TO ${r}
                USING ${guard('moderator')} WITH CHECK ${guard('member')};
              GRANT UPDATE ON app.notes TO ${r}`,
      fix: `DROP POLICY keyhole_update ON app.notes; ${policySql('app.notes', 'update', base.runtime.name)}`,
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS forced and policies, but TRUNCATE, which RLS does not filter',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', ['select'])}
              GRANT SELECT, TRUNCATE ON app.notes TO ${r}`,
      fix: `REVOKE TRUNCATE ON app.notes FROM ${r}`,
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'RLS forced and policies, but GRANT OPTION',
      break: `CREATE TABLE app.notes (id int, group_id uuid); ${rlsSql('app.notes', ['select'])}
              GRANT SELECT ON app.notes TO ${r} WITH GRANT OPTION`,
      fix: `REVOKE GRANT OPTION FOR SELECT ON app.notes FROM ${r}`,
      cleanup: 'DROP TABLE app.notes',
    },
    {
      name: 'no privilege, but the runtime role can SET ROLE to its owner',
      break: `CREATE ROLE ${P}_notes NOLOGIN; CREATE TABLE app.notes (id int, group_id uuid);
              ${rlsSql('app.notes', ['select'])} ALTER TABLE app.notes OWNER TO ${P}_notes;
              GRANT ${P}_notes TO ${r} WITH INHERIT FALSE`,
      fix: `REVOKE ${P}_notes FROM ${r}`,
      cleanup: `DROP TABLE app.notes; DROP ROLE ${P}_notes`,
    },
    {
      name: 'a table shared on purpose',
      break: `CREATE TABLE app.countries (code text); GRANT UPDATE (code) ON app.countries TO ${r}`,
      fix: '',
      fixOptions: withOptions({ unguardedTables: ['app.countries'] }),
      cleanup: 'DROP TABLE app.countries',
    },
    {
      name: 'a table in the search_path, the default application schemas',
      break: `CREATE TABLE public.notes (id int); GRANT DELETE ON public.notes TO ${r}`,
      fix: `REVOKE DELETE ON public.notes FROM ${r}`,
      options: {
        guardedTables: base.options.guardedTables,
        migrationRole: base.options.migrationRole,
      },
      cleanup: 'DROP TABLE public.notes',
    },
  ],
  KH_DB_CHILD_TABLE: [
    {
      name: 'an inheritance child',
      break: `CREATE TABLE app.posts_old () INHERITS (app.posts); ALTER TABLE app.posts_old OWNER TO ${m};
              GRANT SELECT ON app.posts_old TO ${r}`,
      fix: `REVOKE ALL ON app.posts_old FROM ${r}`,
      cleanup: 'DROP TABLE app.posts_old',
    },
    {
      name: 'an inheritance child listed as unguarded still counts',
      break: `CREATE TABLE app.posts_old () INHERITS (app.posts); ALTER TABLE app.posts_old OWNER TO ${m};
              GRANT SELECT ON app.posts_old TO ${r}`,
      options: withOptions({ unguardedTables: ['app.posts_old'] }),
      fix: `REVOKE ALL ON app.posts_old FROM ${r}`,
      cleanup: 'DROP TABLE app.posts_old',
    },
    {
      name: 'a partition two levels down',
      break: `${eventsSql}
              CREATE TABLE app.events_a1 PARTITION OF app.events_a FOR VALUES FROM (0) TO (5);
              GRANT SELECT ON app.events, app.events_a1 TO ${r}`,
      fix: `REVOKE ALL ON app.events_a1 FROM ${r}`,
      options: withEvents,
      cleanup: 'DROP TABLE app.events',
    },
    {
      name: 'a partition with RLS enabled but not forced; then forced, it is guarded in its own right',
      break: `${eventsSql}
              CREATE TABLE app.events_a1 PARTITION OF app.events_a FOR VALUES FROM (0) TO (5);
              ${rlsSql('app.events_a1', ['select'])}
              ALTER TABLE app.events_a1 NO FORCE ROW LEVEL SECURITY;
              GRANT SELECT ON app.events, app.events_a1 TO ${r}`,
      fix: 'ALTER TABLE app.events_a1 FORCE ROW LEVEL SECURITY',
      options: withEvents,
      cleanup: 'DROP TABLE app.events',
    },
    {
      name: 'a partition with RLS forced but an always-true policy',
      break: `${eventsSql}
              CREATE TABLE app.events_a1 PARTITION OF app.events_a FOR VALUES FROM (0) TO (5);
              ${rlsSql('app.events_a1', [])}
              CREATE POLICY open ON app.events_a1 FOR SELECT TO ${r} USING (at > 0);
              GRANT SELECT ON app.events, app.events_a1 TO ${r}`,
      fix: `DROP POLICY open ON app.events_a1; ${policySql('app.events_a1', 'select', base.runtime.name)}`,
      options: withEvents,
      cleanup: 'DROP TABLE app.events',
    },
  ],
  KH_DB_SIGNING_KEY_READABLE: [
    {
      name: 'SELECT',
      break: `GRANT SELECT ON keyhole.signing_key TO ${r}`,
      fix: `REVOKE SELECT ON keyhole.signing_key FROM ${r}`,
    },
    {
      name: 'SELECT on the key column',
      break: `GRANT SELECT (key) ON keyhole.signing_key TO ${r}`,
      fix: `REVOKE SELECT (key) ON keyhole.signing_key FROM ${r}`,
    },
    {
      name: 'UPDATE through PUBLIC',
      break: 'GRANT UPDATE ON keyhole.signing_key TO PUBLIC',
      fix: 'REVOKE UPDATE ON keyhole.signing_key FROM PUBLIC',
    },
  ],
  KH_DB_SIGNING_KEY_MISSING: [
    {
      name: 'no such table',
      break: '',
      fix: '',
      options: withOptions({ signingKeyTable: 'keyhole.signing_keys' }),
    },
  ],
  KH_DB_RUNTIME_IS_MIGRATION_ROLE: [
    {
      name: 'the runtime role is named as the migration role',
      break: '',
      fix: '',
      options: withOptions({ migrationRole: base.runtime.name }),
      // keyhole's functions are then "owned by another role than the migration role" too.
      expect: ['KH_DB_KEYHOLE_FUNCTION_ALTERED', 'KH_DB_RUNTIME_IS_MIGRATION_ROLE'],
    },
  ],
}

t.test('the baseline is secure: no finding', async (t) => {
  t.same(await check(), [])
  t.same(await check({ guardedTables: base.options.guardedTables }), [], 'with the defaults too')
  t.same(await check(withPolicies), [], "its policies are exactly the application's")
})

t.test('every finding code has its break → detect → fix cases', async (t) => {
  // KH_DB_CHECK_FAILED is the monitor's (the checks could not run): test/db/monitor.test.ts;
  // KH_DB_CONNECT_FAILED needs a pool to open a connection with: test/db/monitor-connect.test.ts;
  // KH_DB_NOT_ENCRYPTED needs a server with TLS: test/db/tls.test.ts;
  // KH_DB_SIGNING_KEY_MISMATCH the server's key and another: test/db/signing-key-mismatch.test.ts;
  // KH_DB_COLUMN_PRIVILEGE and KH_DB_COLUMN_NOT_GRANTED hidden columns: test/db/column-privileges.test.ts;
  // KH_DB_CAPABILITY_PARAMETER_WRITABLE the sealed capability's privilege: test/db/sealed-capability.test.ts;
  // KH_DB_CAPABILITY_STORE_MISMATCH the store installed at setup: test/db/sealed-capability.test.ts.
  const tested = [
    ...Object.keys(cases),
    'KH_DB_CAPABILITY_PARAMETER_WRITABLE',
    'KH_DB_CAPABILITY_STORE_MISMATCH',
    'KH_DB_COLUMN_NOT_GRANTED',
    'KH_DB_COLUMN_PRIVILEGE',
    'KH_DB_CHECK_FAILED',
    'KH_DB_CONNECT_FAILED',
    'KH_DB_NOT_ENCRYPTED',
    'KH_DB_SIGNING_KEY_MISMATCH',
  ].sort()
  t.same(tested, [...databaseFindingCodes].sort())
})

t.test('restrictive policies and policies for other roles are not unexpected', async (t) => {
  await base.sql(`${recorded}
    CREATE POLICY narrow ON app.posts AS RESTRICTIVE FOR SELECT TO ${r} USING (title <> '');
    CREATE POLICY others ON app.posts FOR SELECT TO ${m} USING (true)`)
  t.teardown(() => base.sql('DROP POLICY narrow ON app.posts; DROP POLICY others ON app.posts'))
  t.same(await check(withPolicies), [])
})

for (const [code, list] of Object.entries(cases)) {
  for (const c of list) {
    t.test(`${code}: ${c.name}: break → detect → fix`, async (t) => {
      if (c.break) await base.sql(c.break)
      const broken = await check(c.options, c.session)
      t.same(codes(broken), (c.expect ?? [code]).sort(), 'the check reports exactly this')
      for (const f of broken) {
        t.type(f.message, 'string')
        t.ok(f.fix.length > 0, `${f.code} says how to fix it`)
      }
      if (c.fix) await base.sql(c.fix)
      const fixedOptions = c.fixOptions ?? (c.break ? c.options : undefined)
      t.same(await check(fixedOptions), [], 'fixed: no finding')
      if (c.cleanup) await base.sql(c.cleanup)
      t.same(await check(), [], 'back to the baseline')
    })
  }
}
