/**
 * `keyhole setup`: the roles, privileges, `keyhole` schema and signing key, applied idempotently
 * over a connection of a role allowed to create roles (a superuser on a developer machine).
 */
import { loadPg, type PgClient } from './pg-driver.ts'
import { ConfigurationError } from '../errors.ts'
import { isIdentifier } from '../sql/identifier.ts'
import {
  applySqlDirectory,
  KEYHOLE_RUNTIME_FUNCTIONS,
  KEYHOLE_VERSION_TABLE,
  keyholeSqlDirectory,
} from './keyhole-sql.ts'
import { scramVerifier } from './scram.ts'
import {
  attributeRepairs,
  createRepairs,
  membershipRepair,
  statementStatsRepairs,
  tablePrivilegeRepairs,
  type SetupRepair,
} from './setup-repairs.ts'
import { sealCapabilityParameter, type CapabilityStore } from './setup-sealed.ts'
import { generateSigningKey, hmacPads, parseSigningKey } from './signing-key.ts'
import { columnGrantBlock } from '../sql/render-column-grants.ts'

/** A role `setup` creates or updates. The password never reaches a log, a message or SQL text. */
export interface RoleCredentials {
  readonly name: string
  readonly password: string
}

export interface SetupOptions {
  /** Owns the application's schemas and `keyhole`; runs migrations; never serves requests. */
  readonly migrationRole: RoleCredentials
  /** The role the application serves with: owns nothing, bypasses nothing. */
  readonly runtimeRole: RoleCredentials
  /** The application's schemas (created when missing, owned by the migration role). @default ['public'] */
  readonly schemas?: readonly string[] | undefined
  /**
   * The capability-signing key stored for keyhole's functions (at least 32 bytes, or their
   * base64url text); `false` leaves the stored key as it is.
   * @default a new random key, returned by setup
   */
  readonly signingKey?: Uint8Array | string | false | undefined
}

/** What setup returns. `signingKey` is not enumerable: logging the result does not print it. */
export interface SetupResult<Key = string> {
  /** The key now stored (base64url); undefined when `signingKey: false` left it as it was. */
  readonly signingKey: Key
  /**
   * The start-up findings setup corrected, in the order it applied them: the drift it repaired
   * (e.g. `{ code: 'KH_DB_BYPASSRLS', message: 'removed BYPASSRLS from the runtime role "app"' }`).
   * Empty when the database was already as setup leaves it. What setup creates the first time
   * (the roles, the signing key) is in `created`, not here; a password set again is in neither.
   */
  readonly repairs: readonly SetupRepair[]
  /** What did not exist and setup created: `role "app_runtime"`, `signing key`. */
  readonly created: readonly string[]
  /**
   * Where `keyhole.set_capability` keeps the verified capability: `'sealed'` when the migration
   * role holds SET on the parameter `backtrace_functions` (setup grants it on PostgreSQL 15+ when
   * the connecting role may), `'signed'` otherwise (see docs/security-model.md).
   */
  readonly capabilityStore: CapabilityStore
}

export type { SetupRepair } from './setup-repairs.ts'
export type { CapabilityStore } from './setup-sealed.ts'

const q = (name: string) => loadPg("keyhole's setup()").escapeIdentifier(name)
const literal = (value: string) => loadPg("keyhole's setup()").escapeLiteral(value)

function parseIdentifierOption(name: unknown, option: string): string {
  if (!isIdentifier(name) || name.startsWith('pg_')) {
    throw new ConfigurationError(
      'KH_INVALID_IDENTIFIER',
      `Invalid ${option}: expected letters, digits and underscores (at most 63, not starting with a digit or pg_)`,
    )
  }
  return name
}

function parseSetupOptions(options: SetupOptions) {
  const migration = parseIdentifierOption(options.migrationRole?.name, 'migration role name')
  const runtime = parseIdentifierOption(options.runtimeRole?.name, 'runtime role name')
  if (migration === runtime) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'The migration role and the runtime role must be different roles',
    )
  }
  for (const [role, option] of [
    [options.migrationRole, 'migration'],
    [options.runtimeRole, 'runtime'],
  ] as const) {
    if (typeof role.password !== 'string' || role.password.length < 12) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `Invalid ${option} role password: expected at least 12 characters`,
      )
    }
  }
  const schemas = (options.schemas ?? ['public']).map((s) =>
    parseIdentifierOption(s, 'schema name'),
  )
  if (schemas.length === 0 || schemas.includes('keyhole')) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      'Invalid schemas: name at least one application schema, and not keyhole',
    )
  }
  const key =
    options.signingKey === false
      ? undefined
      : parseSigningKey(options.signingKey ?? generateSigningKey())
  return { migration, runtime, schemas, key }
}

/**
 * Keeps this transaction's statements out of the server log: the role verifiers travel in
 * statement text (`CREATE ROLE` takes no bind parameter) and the key's pads, key-equivalent, as
 * bind parameters. A verifier in a log lets anyone who reads it try passwords offline. Covers
 * statement logging, duration logging with its parameters, and the statement of an error.
 * Transaction-local, and only where the connecting role may change these settings (a superuser,
 * or GRANT SET ON PARAMETER); otherwise the server's logging settings decide.
 *
 * A DO block, because PostgreSQL 14 has no `has_parameter_privilege` (parameter privileges came in
 * 15): PL/pgSQL plans a statement only when it first runs, so 14 runs the superuser branch alone.
 *
 * ```sql
 * DO $$ BEGIN IF current_setting('server_version_num')::int >= 150000 THEN
 *   PERFORM set_config(name, value, true) FROM (VALUES ('log_statement', 'none'), …) AS quiet (name, value)
 *   WHERE <superuser> OR has_parameter_privilege(name, 'SET');
 * ELSIF <superuser> THEN PERFORM set_config(name, value, true) FROM (VALUES …) AS quiet (name, value);
 * END IF; END $$
 * ```
 */
async function quiet(client: PgClient): Promise<void> {
  const settings = `(VALUES ('log_statement', 'none'), ('log_min_duration_statement', '-1'),
    ('log_parameter_max_length', '0'), ('log_min_error_statement', 'panic'),
    ('log_parameter_max_length_on_error', '0')) AS quiet (name, value)`
  const superuser = '(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)'
  await client.query(
    `DO $quiet$ BEGIN
       IF current_setting('server_version_num')::int >= 150000 THEN
         PERFORM set_config(name, value, true) FROM ${settings}
         WHERE ${superuser} OR has_parameter_privilege(name, 'SET');
       ELSIF ${superuser} THEN
         PERFORM set_config(name, value, true) FROM ${settings};
       END IF;
     END $quiet$`,
  )
}

/**
 * pg_stat_statements, when installed, grants its views and function to PUBLIC (and, in an
 * application schema, the grant on all its tables above reaches its views): the runtime role
 * would read the text and row counts of every statement its role ran. Revoked from PUBLIC and the
 * runtime role, granted to pg_read_all_stats, so monitoring through pg_monitor keeps working (the check
 * KH_DB_STATEMENT_STATS_READABLE reports an extension installed after setup).
 *
 * ```sql
 * REVOKE ALL ON "public".pg_stat_statements, "public".pg_stat_statements_info FROM PUBLIC, "app_runtime";
 * REVOKE EXECUTE ON FUNCTION "public".pg_stat_statements(boolean), "public".pg_stat_statements_info()
 *   FROM PUBLIC, "app_runtime";
 * GRANT SELECT ON "public".pg_stat_statements, "public".pg_stat_statements_info TO pg_read_all_stats;
 * ```
 */
async function hideStatementStats(client: PgClient, runtime: string): Promise<void> {
  const { rows } = await client.query<{ schema: string }>(
    `SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements'`,
  )
  for (const { schema } of rows) {
    const views = `${q(schema)}.pg_stat_statements, ${q(schema)}.pg_stat_statements_info`
    await client.query(`
      REVOKE ALL ON ${views} FROM PUBLIC, ${runtime};
      REVOKE EXECUTE ON FUNCTION ${q(schema)}.pg_stat_statements(boolean),
        ${q(schema)}.pg_stat_statements_info() FROM PUBLIC, ${runtime};
      GRANT SELECT ON ${views} TO pg_read_all_stats;`)
  }
}

/**
 * The tables of `schemas` whose hidden columns keyhole's policy SQL withheld from the runtime role
 * (see render-column-grants.ts), read before setup's table grants replace every grant: the runtime
 * role holds column grants and no table-level SELECT, INSERT or UPDATE there, and the columns it
 * holds no privilege on are the ones kept from it. Setup withholds them again after its grants, in
 * the same transaction, so a re-run never hands a hidden column back.
 *
 * ```sql
 * SELECT format('%I.%I', n.nspname, c.relname) AS sql,
 *   array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE <the runtime role holds nothing on the column>) AS columns
 * FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid …
 * WHERE n.nspname = ANY($2) AND <no table-level SELECT, INSERT or UPDATE> AND <some column grant>
 * ```
 */
async function withheldColumns(client: PgClient, runtime: string, schemas: readonly string[]) {
  const { rows } = await client.query<{ sql: string; columns: string[] }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS sql,
       array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE NOT EXISTS (
         SELECT 1 FROM aclexplode(a.attacl) x WHERE x.grantee = $1::regrole)) AS columns
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($2)
       AND NOT EXISTS (SELECT 1 FROM aclexplode(c.relacl) x WHERE x.grantee = $1::regrole
         AND x.privilege_type IN ('SELECT', 'INSERT', 'UPDATE'))
       AND EXISTS (SELECT 1 FROM pg_attribute b, aclexplode(b.attacl) x
         WHERE b.attrelid = c.oid AND x.grantee = $1::regrole)
     GROUP BY n.nspname, c.relname
     HAVING bool_or(NOT EXISTS (SELECT 1 FROM aclexplode(a.attacl) x WHERE x.grantee = $1::regrole))
     ORDER BY 1`,
    [runtime, schemas],
  )
  return rows
}

/**
 * `CREATE ROLE` or `ALTER ROLE` to exactly these attributes; the password as a SCRAM verifier.
 * Returns the attributes it removed, or undefined when it created the role.
 */
async function ensureRole(client: PgClient, role: RoleCredentials, attributes: string) {
  const removed = await attributeRepairs(client, role.name)
  const verb = removed === undefined ? 'CREATE' : 'ALTER'
  await client.query(
    `${verb} ROLE ${q(role.name)} WITH ${attributes} PASSWORD ${literal(scramVerifier(role.password))}`,
  )
  return removed
}

/**
 * Creates or updates, idempotently:
 * - the migration role (LOGIN, NOSUPERUSER, NOBYPASSRLS, NOCREATEDB, NOCREATEROLE, NOREPLICATION)
 *   owning the application's schemas and `keyhole`;
 * - the runtime role (the same, and NOINHERIT from nothing: setup revokes its memberships) with
 *   USAGE on the schemas, SELECT/INSERT/UPDATE/DELETE on their tables and USAGE/SELECT on their
 *   sequences, now and by default for what the migration role creates later; never TRUNCATE,
 *   REFERENCES, TRIGGER or GRANT OPTION; on a table whose hidden columns keyhole's policy SQL
 *   withheld, still none on those columns;
 * - `REVOKE CREATE ON SCHEMA public FROM PUBLIC`, `REVOKE CREATE, TEMPORARY ON DATABASE … FROM PUBLIC`;
 * - keyhole's SQL (`sql/`, as the migration role), EXECUTE on its four functions for the runtime
 *   role only, and the signing key's HMAC pads (a new key unless `signingKey` is given or false);
 * - on PostgreSQL 15+, when the connecting role may grant it: SET on the parameter
 *   `backtrace_functions` for the migration role (the sealed capability, sql/000003), and neither
 *   SET nor ALTER SYSTEM on it for the runtime role or PUBLIC; then, as the migration role, the
 *   variant of keyhole's capability functions that its privilege allows (sql/000004:
 *   `SELECT keyhole.install_capability_store()`);
 * - when pg_stat_statements is installed: its views and function revoked from PUBLIC, granted to
 *   pg_read_all_stats.
 *
 * ```sql
 * CREATE ROLE "app_runtime" WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION
 *   PASSWORD 'SCRAM-SHA-256$4096:…';
 * ALTER DEFAULT PRIVILEGES FOR ROLE "app_migrator" IN SCHEMA "public"
 *   GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "app_runtime";
 * …
 * ```
 * @param url a URL of a role allowed to create roles and schemas (CREATEROLE, or a superuser)
 * @throws ConfigurationError for bad names, short passwords or keys; pg's error when the
 * connecting role lacks a privilege.
 */
export async function setup(
  url: string,
  options: SetupOptions & { signingKey: false },
): Promise<SetupResult<undefined>>
export async function setup(url: string, options: SetupOptions): Promise<SetupResult>
export async function setup(
  url: string,
  options: SetupOptions,
): Promise<SetupResult<string | undefined>> {
  const { migration, runtime, schemas, key } = parseSetupOptions(options)
  const m = q(migration)
  const r = q(runtime)
  const client = new (loadPg("keyhole's setup()").Client)({ connectionString: url })
  const repairs: SetupRepair[] = []
  const created: string[] = []
  await client.connect()
  try {
    await client.query('BEGIN')
    await quiet(client)
    const roleAttributes = 'LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION'
    if ((await ensureRole(client, options.migrationRole, roleAttributes)) === undefined) {
      created.push(`role "${migration}"`)
    }
    const runtimeRemoved = await ensureRole(client, options.runtimeRole, roleAttributes)
    if (runtimeRemoved === undefined) created.push(`role "${runtime}"`)
    else repairs.push(...runtimeRemoved)
    // The runtime role is a member of nothing: a membership could carry ownership or BYPASSRLS.
    const { rows: memberships } = await client.query<{ role: string }>(
      `SELECT g.rolname AS role FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid
       WHERE a.member = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1`,
      [runtime],
    )
    for (const { role } of memberships) {
      const repair = await membershipRepair(client, role, runtime, migration, schemas)
      if (repair !== undefined) repairs.push(repair)
      await client.query(`REVOKE ${q(role)} FROM ${r}`)
    }
    repairs.push(...(await createRepairs(client, runtime, schemas)))
    repairs.push(...(await tablePrivilegeRepairs(client, runtime, schemas)))
    // Before the grants on all tables below, which reach the extension's views for a moment.
    repairs.push(...(await statementStatsRepairs(client, runtime)))
    const withheld = await withheldColumns(client, runtime, schemas)
    const { rows: db } = await client.query<{ name: string }>('SELECT current_database() AS name')
    const database = q(db[0]!.name)
    await client.query(`
      REVOKE CREATE ON SCHEMA public FROM PUBLIC;
      REVOKE CREATE, TEMPORARY ON DATABASE ${database} FROM PUBLIC, ${r};
      GRANT CONNECT ON DATABASE ${database} TO ${m}, ${r};
      CREATE SCHEMA IF NOT EXISTS keyhole AUTHORIZATION ${m};
      ALTER SCHEMA keyhole OWNER TO ${m};
      REVOKE ALL ON SCHEMA keyhole FROM PUBLIC, ${r};
      GRANT USAGE ON SCHEMA keyhole TO ${r};`)
    for (const schema of schemas) {
      const s = q(schema)
      await client.query(`
        CREATE SCHEMA IF NOT EXISTS ${s} AUTHORIZATION ${m};
        ALTER SCHEMA ${s} OWNER TO ${m};
        REVOKE CREATE ON SCHEMA ${s} FROM PUBLIC, ${r};
        GRANT USAGE ON SCHEMA ${s} TO ${r};
        REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${r};
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${s} TO ${r};
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${r};
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${r};
        ALTER DEFAULT PRIVILEGES FOR ROLE ${m} IN SCHEMA ${s} REVOKE ALL ON TABLES FROM ${r};
        ALTER DEFAULT PRIVILEGES FOR ROLE ${m} IN SCHEMA ${s}
          GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${r};
        ALTER DEFAULT PRIVILEGES FOR ROLE ${m} IN SCHEMA ${s} REVOKE ALL ON SEQUENCES FROM ${r};
        ALTER DEFAULT PRIVILEGES FOR ROLE ${m} IN SCHEMA ${s} GRANT USAGE, SELECT ON SEQUENCES TO ${r};`)
    }
    // The hidden columns stay hidden: the grants above reached every column of every table.
    if (withheld.length > 0) await client.query(columnGrantBlock(withheld, runtime))
    await client.query('COMMIT')
    // keyhole's own SQL, owned by the migration role: run it as that role on this session.
    const { rows: keyTable } = await client.query<{ exists: boolean }>(
      `SELECT to_regclass('keyhole.signing_key') IS NOT NULL AS exists`,
    )
    await client.query(`SET ROLE ${m}`)
    await applySqlDirectory(client, keyholeSqlDirectory(), KEYHOLE_VERSION_TABLE)
    await client.query('RESET ROLE')
    await client.query('BEGIN')
    repairs.push(...(await tablePrivilegeRepairs(client, runtime, ['keyhole'])))
    await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA keyhole FROM PUBLIC, ${r}`)
    await client.query(`REVOKE ALL ON ALL FUNCTIONS IN SCHEMA keyhole FROM PUBLIC, ${r}`)
    await client.query(`GRANT EXECUTE ON FUNCTION ${KEYHOLE_RUNTIME_FUNCTIONS.join(', ')} TO ${r}`)
    const sealed = await sealCapabilityParameter(client, migration, runtime, q)
    repairs.push(...sealed.repairs)
    // The store is decided here, once, by the migration role's privilege (sql/000004).
    await client.query(`SET ROLE ${m}`)
    const { rows: installed } = await client.query<{ store: CapabilityStore }>(
      'SELECT keyhole.install_capability_store() AS store',
    )
    await client.query('RESET ROLE')
    await hideStatementStats(client, r)
    await quiet(client)
    if (key !== undefined) {
      // A key replaced is no finding (the key is the caller's choice); a key missing is one.
      const { rows: stored } = await client.query('SELECT 1 FROM keyhole.signing_key')
      if (stored.length === 0 && keyTable[0]!.exists) {
        repairs.push({
          code: 'KH_DB_SIGNING_KEY_MISSING',
          message: 'stored the signing key (keyhole.signing_key was empty)',
        })
      } else if (stored.length === 0) created.push('signing key')
      const { innerPad, outerPad } = hmacPads(key)
      await client.query(
        `INSERT INTO keyhole.signing_key (id, inner_pad, outer_pad) VALUES (true, $1, $2)
         ON CONFLICT (id) DO UPDATE SET inner_pad = excluded.inner_pad, outer_pad = excluded.outer_pad`,
        [innerPad, outerPad],
      )
    }
    await client.query('COMMIT')
    const result = { repairs, created, capabilityStore: installed[0]!.store }
    Object.defineProperty(result, 'signingKey', {
      value: key?.toString('base64url'),
      enumerable: false,
    })
    return result as unknown as SetupResult<string | undefined>
  } finally {
    // The session may hold SET ROLE or an open transaction: never pooled, ended here.
    await client.end()
  }
}
