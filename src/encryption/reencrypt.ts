/**
 * `reencrypt`: after a key rotation, move a table's values sealed with an older key to the current
 * one, batch by batch, through a keyhole handle (so its guards, grants and RLS apply as to any
 * statement). Idempotent: a row already under the current key is not touched, and a run stopped
 * half-way is finished by the next.
 */
import { ConfigurationError } from '../errors.ts'
import type { Row } from '../sql/queryable.ts'
import type { Where } from '../sql/where.ts'
import { layerOf, sealedWithOtherKey } from './encrypted-statements.ts'

/** What {@link reencrypt} needs of a handle: its select and update (`runAsSystem`'s handle will do). */
export interface ReencryptHandle {
  select(
    table: string,
    where?: Where,
    options?: { columns?: readonly string[]; limit?: number },
  ): Promise<Row[]>
  update(
    table: string,
    where: Where,
    set: Row,
    options?: { returning?: readonly string[] },
  ): Promise<unknown>
}

export interface ReencryptOptions {
  /** The table, as the policies name it; it must declare encrypted columns. */
  readonly table: string
  /** Rows read and rewritten per round (each round: one SELECT, one UPDATE per row). @default 100 */
  readonly batchSize?: number | undefined
}

export interface ReencryptResult {
  /** Rows moved to the current key. */
  readonly rows: number
}

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `reencrypt: ${message}`)
}

/**
 * Re-seals every value of `table`'s encrypted columns that names a key other than the current one
 * (and rewrites its blind index), `batchSize` rows at a time, until none is left. `db` is a handle
 * of keyhole's (`runAsSystem` declaring read and update on the table, `keyhole.run`, `request.db`)
 * over the same policies and data keys. Each round:
 * ```sql
 * SELECT "t"."id", "t"."invite_code" FROM "groups" AS "t"
 * WHERE (("t"."invite_code" IS NOT NULL AND NOT ("t"."invite_code" LIKE $1))) LIMIT $2
 * -- then, per row: UPDATE … SET "invite_code" = <sealed with the current key> WHERE "t"."id" = $n
 * ```
 * @throws ConfigurationError `KH_INVALID_OPTIONS` for a handle without encrypted columns, a table
 * without them or a bad batch size; DecryptionFailed `KH_DECRYPT_FAILED` for a value no key opens
 * (the rows before it are moved).
 * @example
 * await keyhole.runAsSystem(
 *   { reason: 'rotate the data key', tables: ['groups'], operations: ['read', 'update'] },
 *   (db) => reencrypt(db, { table: 'groups' }),
 * )
 */
export async function reencrypt(
  db: ReencryptHandle,
  options: ReencryptOptions,
): Promise<ReencryptResult> {
  const layer = db !== null && typeof db === 'object' ? layerOf(db) : undefined
  if (layer === undefined) {
    throw invalid('db must be a keyhole handle whose policies declare encrypted columns')
  }
  const table = layer.tables.get(String(options?.table))
  if (table === undefined) {
    throw invalid(`table ${String(options?.table)} declares no encrypted columns`)
  }
  const batchSize = options.batchSize ?? 100
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw invalid('batchSize must be a positive integer')
  }
  const columns = [...table.columns.keys()]
  const where = sealedWithOtherKey(layer, table.table)
  let moved = 0
  for (;;) {
    const rows = await db.select(table.table, where, {
      columns: [table.rowKey, ...columns],
      limit: batchSize,
    })
    for (const row of rows) {
      const set: Row = {}
      for (const column of columns) set[column] = row[column]
      await db.update(table.table, { [table.rowKey]: row[table.rowKey] } as Where, set, {
        returning: [],
      })
    }
    moved += rows.length
    if (rows.length < batchSize) return Object.freeze({ rows: moved })
  }
}
