/**
 * The database options keyhole runs statements with, whoever calls: the adapters' `database`
 * option and `createKeyhole`. The pool, the policies, the signing key and the security mode,
 * validated with zod; the mode is stated or follows from the key, never chosen silently.
 */
import { z } from 'zod'
import { dataKeysFromEnv, keyRing, type DataKeys } from '../encryption/data-keys.ts'
import { declaresEncryption, type EncryptedTables } from '../encryption/encrypted-statements.ts'
import { ConfigurationError } from '../errors.ts'
import type { Policies } from '../sql/policies.ts'
import type { Queryable } from '../sql/queryable.ts'
import type { CheckQueryable } from './check-database.ts'
import type { SessionPool } from './session.ts'

/** A pg `Pool` of the RUNTIME role (or anything with its `query` and `connect`). */
export type DatabasePool = SessionPool & Queryable & CheckQueryable

export interface DatabaseOptions {
  /** The runtime role's pool. keyhole never ends it: end it in your own `onClose`. */
  pool: DatabasePool
  /** From `definePolicies`: the guard of each table and operation behind `request.db`. */
  policies: Policies
  /**
   * The capability-signing key (≥ 32 bytes, or their base64url text), the one `keyhole setup`
   * installed. Never logged.
   */
  signingKey?: string | Uint8Array | undefined
  /**
   * `'rls'`: each request's statements run in one transaction that first sets the signed
   * capability, so PostgreSQL's row-level security re-checks every row (needs `signingKey`).
   * `'guard'`: statements run on the pool, guarded by the statement alone; no capability is set,
   * so the guarded tables must not have row-level security (the start-up checks refuse them with
   * KH_DB_GUARD_MODE_UNDER_RLS), and `signingKey` must not be given.
   * Never inferred from a missing key: without `signingKey`, `mode` is required.
   * @default 'rls' when `signingKey` is given; required otherwise
   */
  mode?: 'guard' | 'rls' | undefined
  /** Named prepared statements (see PgBouncer's `max_prepared_statements`). @default true */
  prepared?: boolean | undefined
  /**
   * The keys of the policies' encrypted columns (`dataKeys(…)`, `await unwrapDataKeys(…)` for a
   * KMS, or your own `{ currentKeyId, key(id) }`), resolved before registration: nothing is
   * awaited per row. Never logged. When the policies declare encrypted columns and this is not
   * given, `KEYHOLE_DATA_KEY` (and `KEYHOLE_DATA_KEYS` for older keys) is read; neither is a
   * start-up refusal, `KH_DATA_KEY_MISSING`.
   * @default dataKeysFromEnv() when the policies declare encrypted columns
   */
  dataKeys?: DataKeys | undefined
}

export interface ResolvedDatabase {
  readonly pool: DatabasePool
  readonly policies: Policies
  readonly signingKey: string | Uint8Array | undefined
  readonly mode: 'guard' | 'rls'
  readonly prepared: boolean
  readonly dataKeys?: DataKeys | undefined
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null

const pool = z.custom<DatabasePool>(
  (p) => isObject(p) && typeof p.query === 'function' && typeof p.connect === 'function',
  "must be a node-postgres pg.Pool, or a pool with its query and connect whose clients are pg Clients ('guard' mode needs only query and connect)",
)
const policies = z.custom<Policies>(
  (p) => isObject(p) && isObject(p.tables) && Array.isArray(p.roles) && Object.isFrozen(p),
  'must come from definePolicies()',
)

/** The zod shape of {@link DatabaseOptions}, for a schema that holds them (strict). */
export const databaseShape = {
  pool,
  policies,
  signingKey: z.union([z.string().min(1), z.instanceof(Uint8Array)]).optional(),
  mode: z.enum(['guard', 'rls']).optional(),
  prepared: z.boolean().optional(),
  dataKeys: z
    .custom<DataKeys>(
      (k) => isObject(k) && typeof k.currentKeyId === 'string' && typeof k.key === 'function',
      'must come from dataKeys() or unwrapDataKeys(), or be { currentKeyId, key(id) }',
    )
    .optional(),
}

function invalid(path: string, message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `Invalid option ${path}: ${message}`)
}

/**
 * The security mode, stated or following from the key, never chosen silently: a missing key (an
 * unset environment variable) must not quietly turn 'rls' into 'guard'. `prefix` is where the
 * options sit (`'database.'` in the adapters).
 */
function databaseMode(
  mode: 'guard' | 'rls' | undefined,
  keyed: boolean,
  prefix: string,
): 'guard' | 'rls' {
  if (mode === undefined && !keyed) {
    throw invalid(
      `${prefix}mode`,
      `required without ${prefix}signingKey: give ${prefix}signingKey for 'rls' mode (PostgreSQL's row-level security re-checks every row), or state mode: 'guard' (the statement guard alone)`,
    )
  }
  if (mode === 'rls' && !keyed) {
    throw invalid(`${prefix}signingKey`, `required when ${prefix}mode is 'rls'`)
  }
  if (mode === 'guard' && keyed) {
    throw invalid(
      `${prefix}signingKey`,
      "not used in 'guard' mode: remove it, or remove mode: 'guard' to run in 'rls' mode",
    )
  }
  return mode ?? 'rls'
}

/**
 * Whether `pool` is a pg `Pool` (pg-pool keeps the client class it makes as `Client`) whose
 * clients are not node-postgres's JavaScript `Client`: `pg.native.Pool`, `new pg.Pool({ Client:
 * pg.native.Client })`, pg under `NODE_PG_FORCE_NATIVE`, or another driver's client class. The
 * JavaScript client (every pg of the peer range, and its subclasses) reads the protocol in
 * `_handleReadyForQuery` and friends; pg-native's client has none of them, and no `Connection`
 * for 'rls' mode's pipeline to write to. A wrapper pool without `Client` is not judged here: the
 * pipeline refuses its clients at the first statement.
 */
function nonPgClientPool(pool: unknown): boolean {
  const client = (pool as { Client?: unknown }).Client
  if (typeof client !== 'function') return false
  const prototype = client.prototype as Record<string, unknown> | undefined
  return typeof prototype?._handleReadyForQuery !== 'function'
}

/**
 * The database options, parsed by a schema holding {@link databaseShape}, with the mode decided.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the option (under `prefix`), also for an
 * 'rls' pool whose clients are not node-postgres's (pg.native)
 */
export function resolveDatabase(options: DatabaseOptions, prefix: string): ResolvedDatabase {
  const mode = databaseMode(options.mode, options.signingKey !== undefined, prefix)
  if (mode === 'rls' && nonPgClientPool(options.pool)) {
    throw invalid(
      `${prefix}pool`,
      "'rls' mode pipelines each request's statements on node-postgres's connection, and this pool's Client is not node-postgres's JavaScript Client (pg.native, or another driver): give a pg.Pool (pg ^8.11.0, not pg.native)",
    )
  }
  let dataKeys = options.dataKeys
  if (dataKeys === undefined && declaresEncryption(options.policies.tables as EncryptedTables)) {
    dataKeys = dataKeysFromEnv()
    if (dataKeys === undefined) {
      throw new ConfigurationError(
        'KH_DATA_KEY_MISSING',
        `The policies declare encrypted columns: set KEYHOLE_DATA_KEY (the base64 of 32 bytes, e.g. openssl rand -base64 32) or give ${prefix}dataKeys`,
      )
    }
  }
  // The current key checked now, not on the first row.
  if (dataKeys !== undefined) keyRing(dataKeys)
  return Object.freeze({
    pool: options.pool,
    policies: options.policies,
    signingKey: options.signingKey,
    mode,
    prepared: options.prepared ?? true,
    dataKeys,
  })
}
