/**
 * The options an HTTP adapter adds to the token options: public routes, denial logging, and the
 * database (policy-bound `request.db`, start-up checks, monitor). Framework-free, so the Fastify
 * and Express adapters validate them the same way. Validated once with zod, copied and frozen; the
 * caller's object is never mutated.
 */
import { z } from 'zod'
import type { GroupIdType } from '../capability/capability.ts'
import type { CheckDatabaseOptions } from '../db/check-database.ts'
import { resolveCheckOptions } from '../db/checks/options.ts'
import { KEYHOLE_FUNCTIONS } from '../db/keyhole-sql.ts'
import {
  databaseShape,
  resolveDatabase,
  type DatabaseOptions,
  type ResolvedDatabase,
} from '../db/database-options.ts'
import { ConfigurationError, type GuardedOperation } from '../errors.ts'
import type { FindingEvent } from '../events.ts'
import { tableOperations, type Policies } from '../sql/policies.ts'
import { hiddenColumnsOf } from '../sql/render-column-grants.ts'

export type { DatabaseOptions, DatabasePool, ResolvedDatabase } from '../db/database-options.ts'

export interface MonitorSettings {
  /** Milliseconds between runs of the checks. @default 60000 */
  intervalMs?: number | undefined
  /**
   * On a finding, answer 503 to every request until a later run passes (`'503'`), or also close
   * the server (`'close'`). Findings are logged at fatal either way.
   * @default '503'
   */
  onFinding?: 'close' | '503' | undefined
}

export interface AdapterOptions {
  /**
   * Routes that need no token, as registered (`'/health'`, `'/posts/:id'`); an entry ending in
   * `/*` covers the path and every route below it (`'/docs/*'` covers `/docs` and `/docs/json`).
   * A route can also say `config: { keyhole: { public: true } }`. Nothing else is public.
   * @default []
   */
  public?: readonly string[] | undefined
  /** Log every 401 and 403 once, at info, with the code, route and subject. @default true */
  logDenials?: boolean | undefined
  /** Decorates `request.db` with the policy-bound handle. */
  database?: DatabaseOptions | undefined
  /**
   * Start-up checks (`assertDatabaseSecure`) in `onReady`: the server refuses to start on any
   * finding. `true` checks the policies' tables (unqualified names as `public.<table>`) and, in
   * 'rls' mode, that every policy generated from them is installed exactly as generated (apply
   * them with `applyPolicies`, `renderRecordedPolicySql` or `keyhole migrate`); an object adds or
   * overrides `checkDatabase` options (`policies: undefined` falls back to judging the installed
   * policies' text).
   * @default true when `database` is given
   */
  checks?: boolean | Partial<CheckDatabaseOptions> | undefined
  /** Re-runs the checks on an interval; `false` turns it off. @default on when checks are */
  monitor?: MonitorSettings | false | undefined
  /**
   * Called with each finding of the start-up checks and of the monitor, and each recovery (the
   * `keyhole:finding` payload, see docs/events.md), beside the 503 and `monitor.onFinding`: to
   * page someone. What it throws, or a promise it returns rejects with, is logged at warn and
   * changes nothing else. Needs the database checks.
   */
  onFinding?: ((event: FindingEvent) => unknown) | undefined
  /** What the `keyhole:decision` channel carries besides every refusal. */
  events?: EventOptions | undefined
}

export interface EventOptions {
  /**
   * Publish every allow too (each authenticated request, each passed `requireRole`), not only
   * the 401/403/404 refusals. Built only while the channel has subscribers.
   * @default false
   */
  allows?: boolean | undefined
}

export interface ResolvedAdapterOptions {
  readonly publicRoutes: readonly string[]
  readonly logDenials: boolean
  readonly database: ResolvedDatabase | undefined
  readonly checks: CheckDatabaseOptions | undefined
  readonly monitor: Required<MonitorSettings> | undefined
  readonly onFinding: ((event: FindingEvent) => unknown) | undefined
  readonly events: { readonly allows: boolean }
}

const schema = z.strictObject({
  public: z
    .array(z.string().regex(/^\/[^\s?#]*$/, 'each route must start with / (no query, no spaces)'))
    .optional(),
  logDenials: z.boolean().optional(),
  database: z.strictObject(databaseShape).optional(),
  checks: z.union([z.boolean(), z.record(z.string(), z.unknown())]).optional(),
  monitor: z
    .union([
      z.literal(false),
      z.strictObject({
        intervalMs: z.number().int().positive().optional(),
        onFinding: z.enum(['close', '503']).optional(),
      }),
    ])
    .optional(),
  onFinding: z
    .custom<(event: FindingEvent) => unknown>((f) => typeof f === 'function', 'must be a function')
    .optional(),
  events: z.strictObject({ allows: z.boolean().optional() }).optional(),
})

const OPERATIONS: Record<string, GuardedOperation> = {
  read: 'select',
  insert: 'insert',
  update: 'update',
  delete: 'delete',
}

function invalid(path: string, message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `Invalid option ${path}: ${message}`)
}

/** An unqualified table of the policies is `public.<table>` to the checks. */
const qualified = (table: string) => (table.includes('.') ? table : `public.${table}`)

/** Every table of the policies, with the operations keyhole performs on it (as the CLI checks). */
function guardedTables(policies: Policies): CheckDatabaseOptions['guardedTables'] {
  return Object.entries(policies.tables).map(([table, policy]) => ({
    table: qualified(table),
    operations: tableOperations(policy).map(
      (operation) => OPERATIONS[operation] as GuardedOperation,
    ),
  }))
}

/**
 * For `false | { … }` options zod reports "Invalid input" on the option itself: name the field of
 * the object form instead, when that is what went wrong (the branch whose issue is deepest).
 */
function innermost(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union') return issue
  const inner = issue.errors
    .map((branch) => branch[0] as z.core.$ZodIssue)
    .reduce((a, b) => (b.path.length > a.path.length ? b : a))
  if (inner.path.length === 0 && inner.code !== 'unrecognized_keys') return issue
  return { ...inner, path: [...issue.path, ...inner.path] }
}

/** What the adapter options need to know of the token options. */
export interface AdapterContext {
  /** The capability's group-ID type, which the generated policies are compared in. */
  readonly groupIdType: GroupIdType
}

/**
 * Validates the adapter's own options (the token options are `createAuthenticator`'s).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the option.
 */
export function resolveAdapterOptions(
  options: AdapterOptions,
  context: AdapterContext,
): ResolvedAdapterOptions {
  const parsed = schema.safeParse(options)
  if (!parsed.success) {
    // zod reports at least one issue on failure; the first names the option.
    const issue = innermost(parsed.error.issues[0] as z.core.$ZodIssue)
    const unknown = issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : []
    throw invalid([...issue.path.map(String), ...unknown].join('.'), issue.message)
  }
  const o = parsed.data
  let database: ResolvedDatabase | undefined
  if (o.database) {
    database = resolveDatabase(o.database, 'database.')
  }
  const wantChecks = o.checks ?? database !== undefined
  if (wantChecks !== false && database === undefined) {
    throw invalid('checks', 'needs the database option')
  }
  if (typeof wantChecks === 'object' && 'mode' in wantChecks) {
    throw invalid('checks.mode', 'follows database.mode: set the mode there')
  }
  let checks: CheckDatabaseOptions | undefined
  if (wantChecks !== false && database !== undefined) {
    checks = {
      guardedTables: guardedTables(database.policies),
      // Both modes: a hidden column is the runtime role's to never reach, guard or not.
      hiddenColumns: hiddenColumnsOf(database.policies).map((h) => ({
        table: qualified(h.table),
        columns: h.columns,
      })),
      keyholeFunctions: [...KEYHOLE_FUNCTIONS],
      // In 'guard' mode the statements carry the guard; the policies are the second layer that
      // 'rls' mode relies on, so there they must be exactly the generated ones.
      ...(database.mode === 'rls'
        ? {
            policies: database.policies,
            groupIdType: context.groupIdType,
            signingKey: database.signingKey,
          }
        : {}),
      ...(wantChecks === true ? {} : wantChecks),
      // What the checks expect of the guarded tables follows the adapter's mode.
      mode: database.mode,
    }
    // Fails now, naming the option, rather than in onReady.
    checks = resolveCheckOptions(checks)
  }
  if (o.monitor !== undefined && o.monitor !== false && checks === undefined) {
    throw invalid('monitor', 'needs the database checks (database, and checks not false)')
  }
  const monitor =
    checks === undefined || o.monitor === false
      ? undefined
      : Object.freeze({
          intervalMs: o.monitor?.intervalMs ?? 60_000,
          onFinding: o.monitor?.onFinding ?? '503',
        })
  if (o.onFinding !== undefined && checks === undefined) {
    throw invalid('onFinding', 'needs the database checks (database, and checks not false)')
  }
  return Object.freeze({
    publicRoutes: Object.freeze([...(o.public ?? [])]),
    logDenials: o.logDenials ?? true,
    database,
    checks,
    monitor,
    onFinding: o.onFinding,
    events: Object.freeze({ allows: o.events?.allows ?? false }),
  })
}
