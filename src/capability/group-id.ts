/**
 * Group-ID parsing per configured type. Every accepted ID comes out as its canonical string (UUIDs
 * lower-case, integers in plain decimal), so `"1"` and `1` are one group, and nothing that could be
 * read as two IDs (`"1,3"`) or as SQL (`"1);--"`) gets through.
 */
import type { GroupIdType } from './capability.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/
const TEXT = /^[A-Za-z0-9_.:-]{1,128}$/
const INT8_MAX = 9223372036854775807n
const INT4_MAX = 2147483647

function integerId(value: unknown, max: bigint): string | undefined {
  if (typeof value === 'number') {
    // A number above 2^53 has already become another number: refuse it rather than guess.
    return Number.isSafeInteger(value) && value >= 0 && BigInt(value) <= max
      ? String(value)
      : undefined
  }
  if (typeof value === 'string' && DECIMAL.test(value) && BigInt(value) <= max) return value
  return undefined
}

/** The canonical string for `value` as a group ID of `type`, or `undefined` when it is not one. */
export function parseGroupId(type: GroupIdType, value: unknown): string | undefined {
  switch (type) {
    case 'uuid':
      return typeof value === 'string' && UUID.test(value) ? value.toLowerCase() : undefined
    case 'bigint':
      return integerId(value, INT8_MAX)
    case 'integer':
      return integerId(value, BigInt(INT4_MAX))
    case 'text':
      return typeof value === 'string' && TEXT.test(value) ? value : undefined
  }
}
