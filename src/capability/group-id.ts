/**
 * Group-ID parsing per configured type. Every accepted ID comes out as its canonical string (UUIDs
 * lower-case, integers in plain decimal), so `"1"` and `1` are one group, and nothing that could be
 * read as two IDs (`"1,3"`), as SQL (`"1);--"`) or that PostgreSQL would refuse (a NUL byte) gets
 * through. IDs are never negative. One definition serves the claim, `Capability.has` and
 * `assertRole`, so a group named by a route is read exactly as a group named by a token.
 */
import type { GroupIdType } from './capability.ts'

// Only the canonical 8-4-4-4-12 form: PostgreSQL also reads braces and dash-less forms, but two
// spellings of one ID would defeat deduplication and the string comparison in `has`. Checked by
// character code against a table (what /^[0-9a-f]{8}-[0-9a-f]{4}-…-[0-9a-f]{12}$/i accepts, as
// test/capability/group-id.test.ts checks against that expression): a token may carry 10 000
// UUIDs, and the table reads one in a third less time than the expression did. The table covers
// every UTF-16 code unit (64 kB), so a look-up never falls outside it: a fifth faster than a
// 128-entry table read past its end for non-ASCII characters.
const UUID_LENGTH = 36
const DASH = 0x2d
const LOWER_HEX = 1
const UPPER_HEX = 2
/** For each UTF-16 code unit: LOWER_HEX for 0-9 and a-f, UPPER_HEX for A-F, 0 otherwise. */
const HEX = new Uint8Array(0x10000)
for (const digit of '0123456789abcdef') HEX[digit.charCodeAt(0)] = LOWER_HEX
for (const digit of 'ABCDEF') HEX[digit.charCodeAt(0)] = UPPER_HEX
// No sign, no leading zero, no exponent, at most 19 digits (int8's width); the range check follows.
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/
const TEXT = /^[A-Za-z0-9_.:-]{1,128}$/
const INT8_MAX = 9223372036854775807n
const INT4_MAX = 2147483647n

function uuidId(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length !== UUID_LENGTH) return undefined
  if (
    value.charCodeAt(8) !== DASH ||
    value.charCodeAt(13) !== DASH ||
    value.charCodeAt(18) !== DASH ||
    value.charCodeAt(23) !== DASH
  ) {
    return undefined
  }
  let kinds = 0
  for (let i = 0; i < UUID_LENGTH; i++) {
    const kind = HEX[value.charCodeAt(i)] as number
    if (kind === 0) {
      // The four dashes, checked above.
      if (i === 8 || i === 13 || i === 18 || i === 23) continue
      return undefined
    }
    kinds |= kind
  }
  // Tokens almost always carry lower-case UUIDs: those are returned as they are, without a copy.
  return kinds & UPPER_HEX ? value.toLowerCase() : value
}

function integerId(value: unknown, max: bigint): string | undefined {
  let text: string
  if (typeof value === 'number') {
    // A JSON number above 2^53 has already become another number: refuse it rather than guess.
    // NaN, ±Infinity and fractions are not safe integers; -0 passes and reads as "0".
    if (!Number.isSafeInteger(value) || value < 0) return undefined
    text = String(value)
  } else if (typeof value === 'string' && DECIMAL.test(value)) {
    text = value
  } else {
    return undefined
  }
  return BigInt(text) <= max ? text : undefined
}

/**
 * The canonical string for `value` as a group ID of `type`, or `undefined` when it is not one.
 *
 * - `uuid`: a string in the 8-4-4-4-12 form, any case; returned lower-case.
 * - `bigint`: a decimal string (no sign, no leading zero) up to 2^63 − 1, or a non-negative safe
 *   integer (never a number above 2^53: it may already be another ID).
 * - `integer`: the same, up to 2^31 − 1.
 * - `text`: 1–128 characters of `[A-Za-z0-9_.:-]`; case-sensitive, returned as is.
 *
 * @example
 * parseGroupId('bigint', 42) // '42'
 * parseGroupId('bigint', '1,3') // undefined
 */
export function parseGroupId(type: GroupIdType, value: unknown): string | undefined {
  switch (type) {
    case 'uuid':
      return uuidId(value)
    case 'bigint':
      return integerId(value, INT8_MAX)
    case 'integer':
      return integerId(value, INT4_MAX)
    case 'text':
      return typeof value === 'string' && TEXT.test(value) ? value : undefined
  }
}
