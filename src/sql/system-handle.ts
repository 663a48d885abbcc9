/**
 * The handle a system context's work receives: keyhole's guarded statements, admitted across
 * groups, but only for the tables and operations the context declared (which `definePolicies`
 * declares for `system`). Anything else is refused before any SQL. In 'rls' mode the database
 * admits the same, and only that, through the signed grant (sql/000002.do.keyhole-system.sql).
 */
import type { Capability, GroupIdType } from '../capability/capability.ts'
import { createCapability } from '../capability/create-capability.ts'
import { createRoleHierarchy } from '../capability/role-hierarchy.ts'
import { ConfigurationError } from '../errors.ts'
import { systemList } from './column-rules.ts'
import { adminOnly } from './guard.ts'
import { describeInput } from './identifier.ts'
import {
  plainStatements,
  registerHandle,
  type EncryptingStatements,
} from '../encryption/encrypted-statements.ts'
import type {
  InsertOptions,
  PolicyHandle,
  Policies,
  PolicyOperation,
  SelectOptions,
  UpdateOptions,
  WriteOptions,
} from './policies.ts'
import type { Queryable, Row } from './queryable.ts'
import type { Returning } from './run-statement.ts'
import type { Where } from './where.ts'

/** What one statement of a system context did: its table, operation and row count. */
export interface SystemStatement {
  readonly table: string
  readonly operation: PolicyOperation
  /** Rows read, inserted, updated or deleted. */
  readonly rows: number
}

/** Options of {@link bindSystem}. */
export interface SystemHandleOptions {
  readonly groupIdType: GroupIdType
  readonly prepared?: boolean | undefined
  /** Called after each statement that succeeded. */
  readonly record: (statement: SystemStatement) => void
  /** The statements, sealing and opening encrypted columns (`encryptedStatements`). @default plain */
  readonly statements?: EncryptingStatements | undefined
  /** The policies' tables: their column rules' hidden columns are never named. */
  readonly tables?: Policies['tables'] | undefined
}

// The statements' own guard in a system context: the admin-shaped capability below folds it to
// TRUE. What narrows the context is the declaration (here) and, in 'rls' mode, the policies.
const ACROSS_GROUPS = adminOnly()

const capabilities = new Map<GroupIdType, Capability>()

/** Admin everywhere, no role, no group: never signed (the database sees only the grant). */
function systemCapability(groupIdType: GroupIdType): Capability {
  let capability = capabilities.get(groupIdType)
  if (capability === undefined) {
    capability = createCapability({
      subject: 'keyhole:system',
      hierarchy: createRoleHierarchy([], ''),
      groupIdType,
      expiresAt: undefined,
      isAdmin: true,
      topRank: new Map(),
    })
    capabilities.set(groupIdType, capability)
  }
  return capability
}

function rawRefused(): never {
  throw new ConfigurationError(
    'KH_SYSTEM_NOT_DECLARED',
    "A system context runs keyhole's statements only: no query or guard of your own SQL",
  )
}

/** `<operation>:<table>`, as the signed grant lists it. */
export function grantOf(table: string, operation: PolicyOperation): string {
  return `${operation}:${table}`
}

/** How many rows a handle call touched: rows read, or the count a write reports (one row: 1). */
const counted = (result: unknown) => (result as { count: number }).count
const one = () => 1
const length = (rows: readonly unknown[]) => rows.length

/**
 * The handle for `grants` (`<operation>:<table>` entries, validated by the caller against the
 * policies). A table or operation outside them throws `KH_SYSTEM_NOT_DECLARED` before any SQL.
 * Without `read` on a table, writes return no rows unless `returning` asks (RLS would refuse
 * the RETURNING: it needs the SELECT policy).
 */
export function bindSystem(
  queryable: Queryable,
  grants: ReadonlySet<string>,
  options: SystemHandleOptions,
): PolicyHandle {
  const capability = systemCapability(options.groupIdType)
  const prepared = options.prepared
  const statements: EncryptingStatements = options.statements ?? plainStatements
  const reads = (table: string) => grants.has(grantOf(table, 'read'))

  async function run<T>(
    table: string,
    operation: PolicyOperation,
    statement: () => Promise<T>,
    rowCount: (result: T) => number,
  ) {
    if (!grants.has(grantOf(table, operation))) {
      throw new ConfigurationError(
        'KH_SYSTEM_NOT_DECLARED',
        `The system context did not declare ${operation} on table ${describeInput(table)}`,
      )
    }
    const result = await statement()
    options.record({ table, operation, rows: rowCount(result) })
    return result
  }
  const readGuard = (table: string) => (reads(table) ? ACROSS_GROUPS : undefined)
  const returning = (table: string, given: Returning | undefined): Returning =>
    given ?? (reads(table) ? '*' : [])
  // A table with column rules: hidden columns are refused, and `'*'` names the others.
  const listed = (
    table: string,
    list: Returning,
    named: { where?: Where | undefined; orderBy?: SelectOptions['orderBy']; values?: unknown },
  ): Returning => {
    const policy = options.tables?.[table]
    return policy?.columns === undefined ? list : systemList(policy, table, { ...named, list })
  }

  const handle = Object.freeze({
    insert(table: string, values: Row | readonly Row[], opts: InsertOptions = {}) {
      return run(
        table,
        'insert',
        () =>
          statements.insert(queryable, capability, {
            into: table,
            values: values as Row,
            guard: ACROSS_GROUPS,
            readGuard: readGuard(table),
            returning: listed(table, returning(table, opts.returning), { values }),
            atomic: opts.atomic,
            chosenKeys: opts.chosenKeys,
            prepared,
          }),
        Array.isArray(values) ? counted : one,
      )
    },
    select(table: string, where?: Where, opts: SelectOptions = {}) {
      return run(
        table,
        'read',
        () =>
          statements.select(queryable, capability, {
            from: table,
            where,
            guard: ACROSS_GROUPS,
            columns: listed(table, opts.columns ?? '*', { where, orderBy: opts.orderBy }),
            orderBy: opts.orderBy,
            limit: opts.limit,
            offset: opts.offset,
            after: opts.after,
            prepared,
          }),
        length,
      )
    },
    count(table: string, where?: Where) {
      return run(
        table,
        'read',
        () => {
          listed(table, [], { where }) // only checks: a count returns no column
          return statements.count(queryable, capability, {
            from: table,
            where,
            guard: ACROSS_GROUPS,
            prepared,
          })
        },
        (count: number) => count,
      )
    },
    // Raw SQL would name any table and escape the record: a system context runs keyhole's
    // statements only.
    query: rawRefused,
    guard: rawRefused,
    update(table: string, where: Where, set: Row, opts: UpdateOptions = {}) {
      return run(
        table,
        'update',
        () =>
          statements.update(queryable, capability, {
            table,
            where,
            set,
            guard: ACROSS_GROUPS,
            readGuard: readGuard(table),
            returning: listed(table, returning(table, opts.returning), { where, values: set }),
            chosenKeys: opts.chosenKeys,
            prepared,
          }),
        counted,
      )
    },
    delete(table: string, where: Where, opts: WriteOptions = {}) {
      return run(
        table,
        'delete',
        () =>
          statements.delete(queryable, capability, {
            from: table,
            where,
            guard: ACROSS_GROUPS,
            readGuard: readGuard(table),
            returning: listed(table, returning(table, opts.returning), { where }),
            prepared,
          }),
        counted,
      )
    },
  })
  registerHandle(handle, statements)
  return handle as unknown as PolicyHandle
}
