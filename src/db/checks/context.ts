/**
 * What every start-up check shares: the connection it reads the catalogs through, the resolved
 * options and the facts gathered once per run (the runtime role and the guarded tables).
 */
import type { DatabaseFinding, GuardedOperation } from '../../errors.ts'
import type { DatabaseFindingCode } from './codes.ts'
import type { ResolvedCheckOptions } from './options.ts'

/**
 * The part of a pg `Pool`, `PoolClient` or `Client` the checks use. The checks only read the
 * catalogs, so any of them will do, connected as the RUNTIME role.
 */
export interface CheckQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

/** The runtime role as the catalogs see it, read in the first round trip. */
export interface RuntimeFacts {
  readonly oid: number
  readonly name: string
  readonly superuser: boolean
  readonly bypassRls: boolean
  readonly createRole: boolean
  readonly createDb: boolean
  readonly replication: boolean
  readonly serverVersion: number
  readonly rowSecurity: string
  /** `current_schemas(false)`: the schemas of the search_path that exist. */
  readonly searchPath: readonly string[]
}

/** A guarded table named in the options, resolved against `pg_class`. */
export interface GuardedTableFacts {
  /** The name as the options spell it. */
  readonly name: string
  readonly operations: readonly GuardedOperation[]
  /** Undefined when no ordinary or partitioned table has that name. */
  readonly oid: number | undefined
  readonly rowSecurity: boolean
  readonly forceRowSecurity: boolean
  readonly owner: string | undefined
  /** The runtime role owns the table. */
  readonly owned: boolean
}

export interface CheckContext {
  readonly db: CheckQueryable
  readonly options: ResolvedCheckOptions
  readonly runtime: RuntimeFacts
  readonly tables: readonly GuardedTableFacts[]
}

/** One check: reads what it needs (a query or two) and returns its findings. */
export type Check = (context: CheckContext) => Promise<DatabaseFinding[]> | DatabaseFinding[]

/** Runs one catalog query and returns its rows as `T` (the query's column aliases). */
export async function rows<T>(db: CheckQueryable, text: string, values: unknown[] = []) {
  const result = await db.query(text, values)
  return result.rows as T[]
}

/** A frozen finding. */
export function finding(code: DatabaseFindingCode, message: string, fix: string): DatabaseFinding {
  return Object.freeze({ code, message, fix })
}

/** The oids of the guarded tables that exist. */
export function guardedOids(context: CheckContext): number[] {
  return context.tables.flatMap((t) => (t.oid === undefined ? [] : [t.oid]))
}

/** Quotes an identifier for a `fix` text (never executed by keyhole). */
export function ident(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`
}

/** Hides the password of any connection URL an error message may carry. */
export function redact(message: string): string {
  return message.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@')
}

/** The message of anything thrown, with any URL's password hidden. */
export function messageOf(error: unknown): string {
  return redact(error instanceof Error ? error.message : String(error))
}

/**
 * A new connection as the runtime role failed. keyhole cannot read the role's password (only a
 * superuser can), so a password the runtime role changed itself shows only here.
 */
export function connectFailed(error: unknown): DatabaseFinding {
  return finding(
    'KH_DB_CONNECT_FAILED',
    `a new connection with the pool's settings failed: ${messageOf(error)}`,
    'make the database reachable as the runtime role; if the password was refused, an administrator sets it back (ALTER ROLE <runtime role> PASSWORD …, or keyhole setup) and finds out who changed it: any role may change its own password, so prefer certificate or short-lived credentials in pg_hba.conf',
  )
}
