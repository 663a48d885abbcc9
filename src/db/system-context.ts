/**
 * The system context: work that must cross groups (a sign-in lookup, a nightly cleanup) runs
 * under a named, narrow grant — the tables and operations it declares, which the policies must
 * declare for `system` — and every use is recorded. In 'rls' mode the grant is signed into the
 * transaction (sql/000002.do.keyhole-system.sql) and the RLS policies admit it only where the
 * policies declare `system`; in 'guard' mode keyhole's statements admit it for the declared
 * tables and operations only. There is no switch that turns the guards or RLS off.
 */
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import type { GroupIdType } from '../capability/capability.ts'
import { ConfigurationError, isKeyholeError } from '../errors.ts'
import { channelNames, systemChannel } from '../events.ts'
import { describeInput } from '../sql/identifier.ts'
import {
  assertSystemReads,
  type PolicyHandle,
  type Policies,
  type PolicyOperation,
} from '../sql/policies.ts'
import type { DataKeys } from '../encryption/data-keys.ts'
import { encryptedStatements, type EncryptedTables } from '../encryption/encrypted-statements.ts'
import { bindSystem, grantOf, type SystemStatement } from '../sql/system-handle.ts'
import { insideRequest } from './request-scope.ts'
import type { SessionFactory, SessionQueryable } from './session.ts'

export type { SystemStatement } from '../sql/system-handle.ts'

/** What a system context may do, and why. */
export interface SystemDeclaration {
  /**
   * Why the work crosses groups, in a few words (`'accept an invitation'`): recorded with every
   * use. A constant of your code, never a value from a request (it is logged).
   */
  readonly reason: string
  /** The tables, as the policies name them; each must declare every operation for `system`. */
  readonly tables: readonly string[]
  /** What the work does to each table; update and delete need read too. */
  readonly operations: readonly PolicyOperation[]
}

export interface SystemOptions {
  /**
   * Run even inside a request keyhole's adapter is handling (a sign-in or invitation flow that
   * must read across groups). Without it such a call is refused: `KH_SYSTEM_IN_REQUEST`.
   * @default false
   */
  readonly allowInRequest?: boolean | undefined
}

/**
 * What `keyhole:system` publishes for each use, and what is logged: names, counts and the place
 * in your code, never a value, a row or a token.
 */
export interface SystemContextEvent {
  readonly reason: string
  readonly tables: readonly string[]
  readonly operations: readonly PolicyOperation[]
  readonly mode: 'rls' | 'guard'
  /** `ok`: committed; `error`: the work or a statement failed (rolled back); `refused`: not run. */
  readonly outcome: 'ok' | 'error' | 'refused'
  /** keyhole's error code for `error` and `refused` (undefined for an error of the work's own). */
  readonly code: string | undefined
  /** From the call to the end of the transaction, in milliseconds. */
  readonly durationMs: number
  /** Each statement that succeeded: its table, operation and row count, in order. */
  readonly statements: readonly SystemStatement[]
  /** The rows of all statements. */
  readonly rows: number
  /** `file:line` of the code that called `runAsSystem`, when the stack shows it. */
  readonly caller: string | undefined
}

/** The channel every system-context use is published on (`channelNames.system`). */
export const SYSTEM_CHANNEL = channelNames.system

/** The logger a system context reports to: each use at info, each refusal at warn. */
export interface SystemLogger {
  info(details: object, message: string): void
  warn(details: object, message: string): void
}

/** What {@link createSystemContext} runs on: the runner's resolved database. */
export interface SystemContextOptions {
  readonly policies: Policies
  readonly mode: 'rls' | 'guard'
  readonly groupIdType: GroupIdType
  readonly prepared?: boolean | undefined
  /** 'rls' mode: the signed sessions. */
  readonly sessions?: SessionFactory | undefined
  /** 'guard' mode: one plain transaction on one client. */
  readonly transaction: <T>(work: (db: SessionQueryable) => Promise<T>) => Promise<T>
  readonly logger?: SystemLogger | undefined
  /** The keys of the policies' encrypted columns (required when they declare any). */
  readonly dataKeys?: DataKeys | undefined
}

/** `runAsSystem`: see {@link createSystemContext}. */
export type RunAsSystem = <T>(
  declaration: SystemDeclaration,
  work: (db: PolicyHandle) => Promise<T>,
  options?: SystemOptions,
) => Promise<T>

const OPERATIONS: readonly PolicyOperation[] = ['read', 'insert', 'update', 'delete']

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `Invalid system context: ${message}`)
}

/** The declaration's shape, checked and copied: a reason, tables and operations (each once). */
function parseDeclaration(declaration: SystemDeclaration): SystemDeclaration {
  const { reason, tables, operations } = (declaration ?? {}) as Partial<SystemDeclaration>
  // One printable line: no control characters (U+0000–U+001F, U+007F) reach the log or the event.
  if (typeof reason !== 'string' || !/^[^\u0000-\u001f\u007f]{1,200}$/.test(reason)) {
    throw invalid('reason must be one line of 1 to 200 characters')
  }
  if (
    !Array.isArray(tables) ||
    tables.length === 0 ||
    !tables.every((t) => typeof t === 'string')
  ) {
    throw invalid('tables must be a non-empty list of table names')
  }
  if (
    !Array.isArray(operations) ||
    operations.length === 0 ||
    !operations.every((o) => OPERATIONS.includes(o))
  ) {
    throw invalid('operations must be a non-empty list of read, insert, update and delete')
  }
  const ops = OPERATIONS.filter((o) => operations.includes(o))
  assertSystemReads(ops, 'Invalid system context: its operations')
  return Object.freeze({
    reason,
    tables: Object.freeze([...new Set(tables)]),
    operations: Object.freeze(ops),
  })
}

/** The grants of a declaration, each checked against the policies' `system` lists. */
function grantsOf(policies: Policies, declaration: SystemDeclaration): Set<string> {
  const grants = new Set<string>()
  for (const table of declaration.tables) {
    const allowed = Object.hasOwn(policies.tables, table)
      ? policies.tables[table]?.system
      : undefined
    for (const operation of declaration.operations) {
      if (allowed?.includes(operation) !== true) {
        throw new ConfigurationError(
          'KH_SYSTEM_NOT_DECLARED',
          `The policies do not declare ${operation} on table ${describeInput(table)} for system`,
        )
      }
      grants.add(grantOf(table, operation))
    }
  }
  return grants
}

/**
 * `file:line` of the frame that called `entry`, from a stack captured without it; undefined when
 * the stack does not show one (`entry` not on the stack, or a frame without a location).
 */
export function callerLocation(entry: Function): string | undefined {
  const holder: { stack?: string } = {}
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 1
  Error.captureStackTrace(holder, entry)
  Error.stackTraceLimit = limit
  const frame = /^\s+at (?:.* \()?(.+):(\d+):\d+\)?$/m.exec(String(holder.stack))
  if (frame === null) return undefined
  return `${framePath(frame[1] as string)}:${frame[2]}`
}

/**
 * A stack frame's file as a path: plain node prints an ES module's as a `file:` URL, source-mapped
 * stacks (tsx, `--enable-source-maps`) print paths, node's own modules `node:…` names.
 */
export function framePath(file: string): string {
  return file.startsWith('file:') ? fileURLToPath(file) : file
}

/**
 * Creates `runAsSystem(declaration, work, options)`: runs `work` in one transaction with a handle
 * whose statements cross groups for the declared tables and operations only, and records the use.
 * Checked before any SQL: the declaration's shape (`KH_INVALID_OPTIONS`), that the policies
 * declare each of its tables and operations for `system` (`KH_SYSTEM_NOT_DECLARED`), and that no
 * request is being handled unless `allowInRequest` (`KH_SYSTEM_IN_REQUEST`). In 'rls' mode:
 * ```sql
 * BEGIN; SELECT keyhole.set_system($1); <first statement>   -- $1: the signed grant
 * …
 * COMMIT
 * ```
 * Each use (and each refusal after the shape check) is published on `keyhole:system` and logged
 * (see {@link SystemContextEvent}).
 */
export function createSystemContext(options: SystemContextOptions): RunAsSystem {
  const { policies, mode, logger, sessions } = options
  // Built (and a missing data key refused) once, here at start-up.
  const guarded = encryptedStatements(policies.tables as EncryptedTables, options.dataKeys)

  function report(event: SystemContextEvent): void {
    Object.freeze(event)
    if (systemChannel.hasSubscribers) systemChannel.publish(event)
    if (event.outcome === 'refused')
      logger?.warn({ keyhole: { system: event } }, 'keyhole: system context refused')
    else logger?.info({ keyhole: { system: event } }, 'keyhole: system context')
  }

  const runAsSystem: RunAsSystem = async function runAsSystem<T>(
    declaration: SystemDeclaration,
    work: (db: PolicyHandle) => Promise<T>,
    runOptions: SystemOptions = {},
  ): Promise<T> {
    const caller = callerLocation(runAsSystem)
    const started = performance.now()
    const parsed = parseDeclaration(declaration)
    if (typeof work !== 'function') throw invalid('work must be a function')
    const statements: SystemStatement[] = []
    const event = (outcome: SystemContextEvent['outcome'], error?: unknown) => ({
      reason: parsed.reason,
      tables: parsed.tables,
      operations: parsed.operations,
      mode,
      outcome,
      code: isKeyholeError(error) ? error.code : undefined,
      durationMs: performance.now() - started,
      statements: Object.freeze(statements),
      rows: statements.reduce((sum, s) => sum + s.rows, 0),
      caller,
    })
    let grants: Set<string>
    try {
      grants = grantsOf(policies, parsed)
      if (insideRequest() && runOptions.allowInRequest !== true) {
        throw new ConfigurationError(
          'KH_SYSTEM_IN_REQUEST',
          `The system context "${parsed.reason}" was called while a request is handled: pass allowInRequest: true where that is meant`,
        )
      }
    } catch (error) {
      report(event('refused', error))
      throw error
    }
    const handle = (db: SessionQueryable) =>
      work(
        bindSystem(db, grants, {
          statements: guarded,
          groupIdType: options.groupIdType,
          prepared: options.prepared,
          record: (statement) => statements.push(Object.freeze(statement)),
          tables: policies.tables,
        }),
      )
    try {
      const value = await (sessions === undefined
        ? options.transaction(handle)
        : sessions.withSystem([...grants], handle))
      report(event('ok'))
      return value
    } catch (error) {
      report(event('error', error))
      throw error
    }
  }
  return runAsSystem
}
