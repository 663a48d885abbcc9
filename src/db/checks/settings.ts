import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, rows, type Check } from './context.ts'

interface SettingRow {
  source: 'default' | 'session'
  database: string | null
  all_roles: boolean
  name: string
  value: string
}

const on = new Set(['on', 'true', 'yes', '1', 't', 'tr', 'tru', 'y', 'ye'])

/**
 * Check 10: role and database defaults (`pg_db_role_setting`, applied at every login of the
 * runtime role in this database: its own, in this database or in all; every role's, in this
 * database or in all), the session and the server.
 * - KH_DB_SETTING_PRESET: the capability setting must only ever be set transaction-locally by
 *   keyhole, so it must have no default, nor already hold a value in this session
 *   (postgresql.conf, PGOPTIONS, a session-level SET).
 * - KH_DB_ROW_SECURITY_OFF: `row_security` off, by default or in this session.
 * - KH_DB_ROLE_SETTING: any other default not allowed, with its value, by `allowedSettings`. The
 *   runtime role can `ALTER ROLE CURRENT_USER SET` any setting a user may set
 *   (`default_transaction_read_only`, `statement_timeout`, `search_path`, …): the default
 *   persists, applies to every new connection and survives `RESET ALL`.
 * - KH_DB_SERVER_VERSION: the server is older than the supported minimum.
 *
 * The generated SQL:
 * ```sql
 * SELECT 'default' AS source, CASE WHEN s.setdatabase = 0 THEN NULL ELSE current_database()::text END AS database,
 *   s.setrole = 0 AS all_roles, split_part(cfg, '=', 1) AS name, substr(cfg, strpos(cfg, '=') + 1) AS value
 * FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
 * WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
 *   AND s.setrole IN (0, $1::oid)
 * UNION ALL SELECT 'session', NULL, false, $2, current_setting($2, true) WHERE current_setting($2, true) <> ''
 * ```
 */
export const checkSettings: Check = async ({ db, runtime, options }) => {
  const settings = await rows<SettingRow>(
    db,
    `SELECT 'default' AS source,
       CASE WHEN s.setdatabase = 0 THEN NULL ELSE current_database()::text END AS database,
       s.setrole = 0 AS all_roles, split_part(cfg, '=', 1) AS name,
       substr(cfg, strpos(cfg, '=') + 1) AS value
     FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
     WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
       AND s.setrole IN (0, $1::oid)
     UNION ALL
     SELECT 'session', NULL, false, $2, current_setting($2, true)
     WHERE current_setting($2, true) <> ''`,
    [runtime.oid, options.capabilitySetting],
  )
  const findings: DatabaseFinding[] = []
  for (const s of settings) {
    if (s.source === 'session') {
      findings.push(
        finding(
          'KH_DB_SETTING_PRESET',
          `the capability setting ${options.capabilitySetting} already holds a value in this session, outside any keyhole transaction`,
          'remove it from postgresql.conf, PGOPTIONS and the connection options; never SET it at session level',
        ),
      )
      continue
    }
    const scope = `${s.all_roles ? 'every role' : `the runtime role ${runtime.name}`} in ${s.database ?? 'every database'}`
    const name = s.name.toLowerCase()
    if (name !== 'row_security' && name !== options.capabilitySetting.toLowerCase()) {
      if (options.allowedSettings[name] === s.value) continue
      findings.push(
        finding(
          'KH_DB_ROLE_SETTING',
          `${s.name} has a default for ${scope}: it applies to every new connection and survives RESET ALL (the runtime role can set its own defaults)`,
          `${resetStatement(s, runtime.name)} (or, if you set it on purpose, allow it in the allowedSettings option with its exact value as pg_db_role_setting shows it)`,
        ),
      )
    } else if (name !== 'row_security') {
      findings.push(
        finding(
          'KH_DB_SETTING_PRESET',
          `the capability setting ${options.capabilitySetting} has a default for ${scope}: a capability keyhole did not set could apply`,
          resetStatement(s, runtime.name),
        ),
      )
    } else if (!on.has(s.value.toLowerCase())) {
      findings.push(
        finding(
          'KH_DB_ROW_SECURITY_OFF',
          `row_security defaults to ${s.value} for ${scope}`,
          resetStatement(s, runtime.name),
        ),
      )
    }
  }
  if (!on.has(runtime.rowSecurity.toLowerCase())) {
    findings.push(
      finding(
        'KH_DB_ROW_SECURITY_OFF',
        `row_security is ${runtime.rowSecurity} in this session`,
        'remove row_security = off from postgresql.conf, PGOPTIONS and the connection options',
      ),
    )
  }
  if (runtime.serverVersion < options.minimumServerVersion) {
    findings.push(
      finding(
        'KH_DB_SERVER_VERSION',
        `the server's version ${runtime.serverVersion} is below the supported minimum ${options.minimumServerVersion}`,
        'upgrade PostgreSQL',
      ),
    )
  }
  return findings
}

/** The statement that removes one `pg_db_role_setting` default. */
export function resetStatement(
  s: { database: string | null; all_roles: boolean; name: string },
  runtime: string,
): string {
  const role = s.all_roles ? 'ALL' : ident(runtime)
  const where = s.database === null ? '' : ` IN DATABASE ${ident(s.database)}`
  return `ALTER ROLE ${role}${where} RESET ${s.name};`
}
