/**
 * An UNSIGNED, test-only stand-in for the `keyhole` schema's capability functions (the real,
 * signed ones are engineer D's): they read plain transaction-local settings `test.groups` (JSON:
 * role → group IDs, already including higher roles), `test.admin` and `test.subject`. Plus a
 * throwaway NOLOGIN runtime role `${prefix}_rt` with table privileges only.
 */
import type pg from 'pg'
import type { Capability } from '../../src/capability/capability.ts'

export async function installStandIn(pool: pg.Pool, prefix: string): Promise<string> {
  const rt = `${prefix}_rt`
  await pool.query(`
    CREATE SCHEMA keyhole;
    CREATE FUNCTION keyhole.group_ids(role text) RETURNS text[] LANGUAGE sql STABLE AS $$
      SELECT coalesce(array(SELECT jsonb_array_elements_text(
        nullif(current_setting('test.groups', true), '')::jsonb -> role)), '{}')
    $$;
    CREATE FUNCTION keyhole.is_admin() RETURNS boolean LANGUAGE sql STABLE AS $$
      SELECT coalesce(nullif(current_setting('test.admin', true), '')::boolean, false)
    $$;
    CREATE FUNCTION keyhole.subject() RETURNS text LANGUAGE sql STABLE AS $$
      SELECT nullif(current_setting('test.subject', true), '')
    $$;
    CREATE ROLE ${rt} NOLOGIN;
    GRANT USAGE ON SCHEMA keyhole, public TO ${rt};
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA keyhole TO ${rt};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${rt};
  `)
  return rt
}

/** Inside an open transaction: become the runtime role holding `capability`. */
export async function actAs(
  client: pg.PoolClient,
  rt: string,
  capability: Capability,
): Promise<void> {
  const groups = Object.fromEntries(capability.roles.map((r) => [r, capability.groups(r)]))
  await client.query(`SET LOCAL ROLE ${rt}`)
  await client.query(
    `SELECT set_config('test.groups', $1, true), set_config('test.admin', $2, true), set_config('test.subject', $3, true)`,
    [JSON.stringify(groups), String(capability.isAdmin), capability.subject],
  )
}
