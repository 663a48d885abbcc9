/**
 * A CORRECT baseline for the database checks' break/fix tests: a migration role that owns a small
 * guarded schema, a runtime role that owns nothing and bypasses nothing, a minimal `keyhole`
 * schema (functions with the contract's names and signatures, a signing-key table) and exactly
 * the grants the runtime role should have. The real setup is src/db/setup.ts; this helper does not
 * depend on it, so the checks are tested against a known-good state of their own.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { TestDatabase } from './database.ts'

export interface TestRole {
  readonly name: string
  readonly password: string
}

export interface Baseline {
  readonly migrator: TestRole
  readonly runtime: TestRole
  /** A URL for the runtime role. */
  readonly runtimeUrl: string
  /** The checkDatabase options that describe the baseline. */
  readonly options: {
    guardedTables: { table: string; operations: ('select' | 'insert' | 'update' | 'delete')[] }[]
    migrationRole: string
    applicationSchemas: string[]
  }
  /** Runs SQL as the superuser (arrange, break, fix). */
  sql(text: string): Promise<void>
  /** The keyhole policy expression for a role, as the generated policies read it. */
  readonly guard: (role: string) => string
}

const q = (name: string) => pg.Client.prototype.escapeIdentifier(name)
const literal = (value: string) => pg.Client.prototype.escapeLiteral(value)

/** The policy expression keyhole generates for a table with a `group_id uuid` column. */
export function guard(role: string): string {
  return `(group_id = ANY ((SELECT keyhole.group_ids(${literal(role)}))::uuid[]) OR (SELECT keyhole.is_admin()))`
}

/** SQL that creates the policy `keyhole_<op>` on a fixture table for the runtime role. */
export function policySql(table: string, op: string, runtime: string): string {
  const clause =
    op === 'select' || op === 'delete'
      ? `USING ${guard('member')}`
      : op === 'insert'
        ? `WITH CHECK ${guard('member')}`
        : `USING ${guard('member')} WITH CHECK ${guard('member')}`
  return `CREATE POLICY keyhole_${op} ON ${table} AS PERMISSIVE FOR ${op.toUpperCase()} TO ${q(runtime)} ${clause};`
}

/** Creates the two roles with random passwords (never printed). */
export async function createRoles(
  db: TestDatabase,
): Promise<{ migrator: TestRole; runtime: TestRole }> {
  const migrator = {
    name: `${db.prefix}_migrator`,
    password: randomBytes(18).toString('base64url'),
  }
  const runtime = { name: `${db.prefix}_runtime`, password: randomBytes(18).toString('base64url') }
  await db.pool.query(
    `CREATE ROLE ${q(migrator.name)} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD ${literal(migrator.password)};
     CREATE ROLE ${q(runtime.name)} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD ${literal(runtime.password)};`,
  )
  return { migrator, runtime }
}

/** Builds the baseline in `db` and returns what the tests need. */
export async function createBaseline(db: TestDatabase): Promise<Baseline> {
  const { migrator, runtime } = await createRoles(db)
  const m = q(migrator.name)
  const r = q(runtime.name)
  const fn = (signature: string, returns: string, body: string) =>
    `CREATE FUNCTION keyhole.${signature} RETURNS ${returns} LANGUAGE sql STABLE SECURITY DEFINER
       SET search_path = pg_catalog, pg_temp AS $$ ${body} $$;`
  // A dedicated client: SET ROLE must not stay on a pooled connection.
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  try {
    await client.query(`
      REVOKE CREATE ON SCHEMA public FROM PUBLIC;
      REVOKE CREATE, TEMPORARY ON DATABASE ${q(db.name)} FROM PUBLIC;
      CREATE SCHEMA keyhole AUTHORIZATION ${m};
      CREATE SCHEMA app AUTHORIZATION ${m};
      SET ROLE ${m};
      CREATE TABLE keyhole.signing_key (id int PRIMARY KEY, key bytea NOT NULL);
      ${fn('group_ids(role text)', 'text[]', `SELECT '{}'::text[] FROM keyhole.signing_key LIMIT 0`)}
      ${fn('set_capability(value text)', 'void', 'SELECT NULL::void')}
      ${fn('is_admin()', 'boolean', 'SELECT false')}
      ${fn('subject()', 'text', 'SELECT NULL::text')}
      ${fn('set_system(value text)', 'boolean', 'SELECT true')}
      ${fn('system_allows(tab text, operation text)', 'boolean', 'SELECT false')}
      ${fn('sets_unique_key(relation regclass, columns name[])', 'boolean', 'SELECT false')}
      REVOKE ALL ON FUNCTION keyhole.set_capability(text), keyhole.group_ids(text), keyhole.is_admin(), keyhole.subject(), keyhole.set_system(text), keyhole.system_allows(text, text), keyhole.sets_unique_key(regclass, name[]) FROM PUBLIC;
      GRANT EXECUTE ON FUNCTION keyhole.set_capability(text), keyhole.group_ids(text), keyhole.is_admin(), keyhole.subject(), keyhole.set_system(text), keyhole.system_allows(text, text), keyhole.sets_unique_key(regclass, name[]) TO ${r};
      GRANT USAGE ON SCHEMA keyhole, app TO ${r};
      CREATE TABLE app.posts (id serial PRIMARY KEY, group_id uuid NOT NULL, title text NOT NULL);
      CREATE TABLE app.comments (id serial PRIMARY KEY, post_id int NOT NULL REFERENCES app.posts,
        group_id uuid NOT NULL, body text NOT NULL);
      ALTER TABLE app.posts ENABLE ROW LEVEL SECURITY;
      ALTER TABLE app.posts FORCE ROW LEVEL SECURITY;
      ALTER TABLE app.comments ENABLE ROW LEVEL SECURITY;
      ALTER TABLE app.comments FORCE ROW LEVEL SECURITY;
      ${['select', 'insert', 'update', 'delete'].map((op) => policySql('app.posts', op, runtime.name)).join('\n')}
      ${['select', 'insert'].map((op) => policySql('app.comments', op, runtime.name)).join('\n')}
      GRANT SELECT, INSERT, UPDATE, DELETE ON app.posts TO ${r};
      GRANT SELECT, INSERT ON app.comments TO ${r};
      GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA app TO ${r};
      RESET ROLE;
    `)
  } finally {
    await client.end()
  }
  return {
    migrator,
    runtime,
    runtimeUrl: db.urlAs(runtime.name, runtime.password),
    options: {
      guardedTables: [
        { table: 'app.posts', operations: ['select', 'insert', 'update', 'delete'] },
        { table: 'app.comments', operations: ['select', 'insert'] },
      ],
      migrationRole: migrator.name,
      applicationSchemas: ['app'],
    },
    async sql(text) {
      await db.pool.query(text)
    },
    guard,
  }
}
