import type { DatabaseFinding } from '../../errors.ts'
import { finding, ident, type Check } from './context.ts'
import type { DatabaseFindingCode } from './codes.ts'

const attributes = [
  ['superuser', 'KH_DB_SUPERUSER', 'SUPERUSER', 'bypasses every privilege and row-level security'],
  ['bypassRls', 'KH_DB_BYPASSRLS', 'BYPASSRLS', 'bypasses row-level security'],
  [
    'createRole',
    'KH_DB_CREATEROLE',
    'CREATEROLE',
    'can create roles and grant itself their rights',
  ],
  ['createDb', 'KH_DB_CREATEDB', 'CREATEDB', 'can create databases'],
  ['replication', 'KH_DB_REPLICATION', 'REPLICATION', 'can stream every row of the cluster'],
] as const satisfies readonly (readonly [string, DatabaseFindingCode, string, string])[]

/**
 * Check 1: the runtime role's own attributes (`pg_roles.rolsuper`, `rolbypassrls`,
 * `rolcreaterole`, `rolcreatedb`, `rolreplication`), read in the context's first query.
 */
export const checkRoleAttributes: Check = ({ runtime }) => {
  const findings: DatabaseFinding[] = []
  for (const [key, code, keyword, effect] of attributes) {
    if (!runtime[key]) continue
    findings.push(
      finding(
        code,
        `the runtime role ${runtime.name} has ${keyword}: it ${effect}`,
        `ALTER ROLE ${ident(runtime.name)} NO${keyword};`,
      ),
    )
  }
  return findings
}
