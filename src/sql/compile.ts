/**
 * What every guarded statement shares: parameter numbering, the compiled-statement cache and
 * binding a capability's values per request. A statement is compiled once per shape (table,
 * operation, column set, guard, admin or not) and cached; a request only computes parameters.
 */
import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Capability, GroupIdType } from '../capability/capability.ts'
import type { Row } from './queryable.ts'
import type { GuardTarget } from './render-guard.ts'

/**
 * What a statement knows about the value of one of its row expressions: it equals the request's
 * `index`th input (a `where` equality), or the `key` field of the row or rows passed as the
 * `index`th fact (the values being inserted, or an update's new values).
 */
export type Fact =
  | { readonly kind: 'input'; readonly index: number }
  | { readonly kind: 'field'; readonly index: number; readonly key: string }

/** Where one parameter's value comes from when the statement is bound. */
export type ParamSource =
  | {
      readonly kind: 'groups'
      readonly role: string
      /**
       * Present when every comparison with this group array is on a row expression whose value
       * the request supplies: the array can then be narrowed to those values (see
       * {@link narrowGroups}).
       */
      readonly narrow?: readonly Fact[]
    }
  | { readonly kind: 'subject' }
  | { readonly kind: 'input'; readonly index: number }

/** A statement compiled for one shape. */
export interface CompiledStatement {
  readonly text: string
  /** The prepared statement's name: derived from the text, so a recompiled text reuses it. */
  readonly name: string
  readonly sources: readonly ParamSource[]
  /** Every role the statement's guards name, checked against the capability's hierarchy. */
  readonly roles: readonly string[]
}

/**
 * Numbers a statement's parameters and renders the capability's side of its guards. The group
 * array of each role is one parameter, cast to the configured type so that PostgreSQL never has to
 * guess (`$2::uuid[]`); the admin flag is not a parameter at all.
 *
 * Rendering first emits placeholders; {@link StatementParams.compile} numbers them in order of
 * appearance in the final text, so a branch that folded away (an admin's `OR`) leaves no unused
 * parameter behind, which PostgreSQL would refuse to type.
 */
export class StatementParams implements GuardTarget {
  readonly castSubjectColumn = false
  readonly admin: boolean
  /** How many request inputs the statement has taken so far. */
  inputs = 0
  readonly #groupIdType: GroupIdType
  readonly #roles = new Set<string>()
  /** Role → the row expression each use of its group array compares (undefined: unknown). */
  readonly #uses = new Map<string, (string | undefined)[]>()
  readonly #facts = new Map<string, Fact>()

  constructor(admin: boolean, groupIdType: GroupIdType) {
    this.admin = admin
    this.#groupIdType = groupIdType
  }

  groups(role: string, column?: string): string {
    this.#roles.add(role)
    const uses = this.#uses.get(role)
    if (uses === undefined) this.#uses.set(role, [column])
    else uses.push(column)
    return `\u0001g${role}\u0001::${this.#groupIdType}[]`
  }

  subject(): string {
    return '\u0001s\u0001'
  }

  /** The parameter for the request's `index`th input value. */
  input(index: number): string {
    this.inputs = Math.max(this.inputs, index + 1)
    return `\u0001i${index}\u0001`
  }

  /**
   * Records that, everywhere in the statement, the row expression `column` (e.g. `"t"."group_id"`)
   * equals the value `fact` names: true of a `where` equality ANDed at the top of the statement
   * and of the values an INSERT writes. Only then may a group array compared with it be narrowed.
   */
  know(column: string, fact: Fact): void {
    this.#facts.set(column, fact)
  }

  /** The input parameter `column` is known to equal (a top-level `where` equality), if any. */
  known(column: string): string | undefined {
    const fact = this.#facts.get(column)
    return fact?.kind === 'input' ? this.input(fact.index) : undefined
  }

  #narrowing(role: string): Fact[] | undefined {
    const facts: Fact[] = []
    for (const column of this.#uses.get(role) as (string | undefined)[]) {
      const fact = column === undefined ? undefined : this.#facts.get(column)
      if (fact === undefined) return undefined
      if (!facts.includes(fact)) facts.push(fact)
    }
    return facts
  }

  /** Notes a role that folded away (admin) so the capability still validates it. */
  noteRole(role: string): void {
    this.#roles.add(role)
  }

  compile(template: string): CompiledStatement {
    const numbers = new Map<string, string>()
    const sources: ParamSource[] = []
    const text = template.replace(/\u0001([^\u0001]+)\u0001/g, (_, token: string) => {
      let n = numbers.get(token)
      if (n === undefined) {
        let narrow: Fact[] | undefined
        sources.push(
          token[0] === 'g'
            ? (narrow = this.#narrowing(token.slice(1))) === undefined
              ? { kind: 'groups', role: token.slice(1) }
              : { kind: 'groups', role: token.slice(1), narrow: Object.freeze(narrow) }
            : token[0] === 's'
              ? { kind: 'subject' }
              : { kind: 'input', index: Number(token.slice(1)) },
        )
        n = `$${sources.length}`
        numbers.set(token, n)
      }
      return n
    })
    const name = `keyhole_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`
    return Object.freeze({
      text,
      name,
      sources: Object.freeze(sources),
      roles: Object.freeze([...this.#roles]),
    })
  }
}

const MAX_STATEMENTS = 1000
// Least recently used goes first (lru-cache): a statement in use stays while a flood of new shapes
// passes through; bench/cache.bench.ts measures it against the first-in-first-out Map it replaced.
const cache = new LRUCache<string, CompiledStatement>({ max: MAX_STATEMENTS })

/**
 * The compiled statement for `key`, built on first use. Bounded: shapes can come from request
 * input (the keys of an inserted object), so the least recently used entry goes when the cache is
 * full.
 */
export function cachedStatement(key: string, build: () => CompiledStatement): CompiledStatement {
  return cache.get(key) ?? keepStatement(key, build())
}

/**
 * The compiled statement cached under `key`, if any: with {@link keepStatement}, the lookup of
 * {@link cachedStatement} without a closure built on every call (a hot path's choice).
 */
export function findStatement(key: string): CompiledStatement | undefined {
  return cache.get(key)
}

/** Caches `statement` under `key` (the least recently used entry goes when full); returns it. */
export function keepStatement(key: string, statement: CompiledStatement): CompiledStatement {
  cache.set(key, statement)
  return statement
}

const CAPABILITY_KEYS: Readonly<Record<'A' | 'U', Readonly<Record<GroupIdType, string>>>> = {
  A: { uuid: 'A:uuid', bigint: 'A:bigint', integer: 'A:integer', text: 'A:text' },
  U: { uuid: 'U:uuid', bigint: 'U:bigint', integer: 'U:integer', text: 'U:text' },
}

/**
 * The cache-key part every statement shares: admin or not, and the group-ID type. A constant
 * string, not one built per call: the statement cache hashes each key it is given, and a key
 * made of fewer fresh pieces costs less to build and to hash.
 */
export function capabilityKey(capability: Capability): string {
  return CAPABILITY_KEYS[capability.isAdmin ? 'A' : 'U'][capability.groupIdType]
}

/**
 * The parameter values for one request, in the statement's order. `facts` are the rows the
 * statement's {@link Fact}s of kind `field` refer to.
 */
export function bindParameters(
  statement: CompiledStatement,
  capability: Capability,
  inputs: readonly unknown[],
  facts: readonly unknown[] = [],
): unknown[] {
  // binding() throws for a role outside the hierarchy: a typo in a guard must fail, never grant.
  for (const role of statement.roles) capability.binding(role)
  const { sources } = statement
  const values: unknown[] = new Array(sources.length)
  for (let i = 0; i < sources.length; i++) {
    const source = sources[i] as ParamSource
    if (source.kind === 'subject') values[i] = capability.subject
    else if (source.kind === 'input') values[i] = inputs[source.index]
    else {
      const groups = capability.binding(source.role).groups
      const narrowed =
        source.narrow === undefined
          ? undefined
          : narrowTo(source.narrow, groups, inputs, facts, capability.groupIdType)
      values[i] = groupArray(narrowed ?? groups, capability.groupIdType)
    }
  }
  return values
}

/**
 * {@link narrowGroups} on the values `narrow` names. The common case, one `where` equality or one
 * inserted row's group, takes the one value without building a list of them.
 */
function narrowTo(
  narrow: readonly Fact[],
  groups: readonly string[],
  inputs: readonly unknown[],
  facts: readonly unknown[],
  type: GroupIdType,
): readonly string[] | undefined {
  if (narrow.length === 1) {
    const fact = narrow[0] as Fact
    if (fact.kind === 'input') return narrowOne(groups, inputs[fact.index], type)
    const rows = facts[fact.index]
    if (!Array.isArray(rows)) return narrowOne(groups, (rows as Row)[fact.key], type)
  }
  return narrowGroups(groups, factValues(narrow, inputs, facts), type)
}

function factValues(
  narrow: readonly Fact[],
  inputs: readonly unknown[],
  facts: readonly unknown[],
): unknown[] {
  const values: unknown[] = []
  for (const fact of narrow) {
    if (fact.kind === 'input') values.push(inputs[fact.index])
    else {
      const rows = facts[fact.index]
      for (const row of Array.isArray(rows) ? rows : [rows]) {
        values.push((row as Record<string, unknown>)[fact.key])
      }
    }
  }
  return values
}

const memberSets = new WeakMap<readonly string[], ReadonlySet<string>>()

function memberSet(groups: readonly string[]): ReadonlySet<string> {
  let set = memberSets.get(groups)
  if (set === undefined) {
    set = new Set(groups)
    if (Object.isFrozen(groups)) memberSets.set(groups, set)
  }
  return set
}

/**
 * The canonical string of an ID value of type `type`, when it has an obvious one; else undefined:
 * a string (a UUID in lower case; any other as written), a bigint or a safe integer in decimal.
 */
export function canonicalId(value: unknown, type: GroupIdType): string | undefined {
  if (typeof value === 'string') return type === 'uuid' ? value.toLowerCase() : value
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  return undefined
}

/**
 * The holder's groups narrowed to the `values` the statement's row expressions are known to hold,
 * or undefined (bind every group) when any value is not, as written, one of the holder's groups.
 *
 * Why: measured on PostgreSQL 18, binding the whole array costs in proportion to its size on every
 * statement (sent, parsed by `array_in` element by element, scanned): an INSERT ran at 0.75× plain
 * with 100 groups, 0.40× with 1 000 and 0.05× with 10 000. When the statement's target group is
 * known (the values of an INSERT, a `where` on the group column) only those groups can match, so a
 * one-element array gives the same answer at the cost of one group.
 *
 * The database still decides, on the narrowed array, and the answer cannot change: the narrowed
 * array is a subset of the full one, so it never grants more; and it is used only when every known
 * value is, as a string, one of the holder's group IDs, so `value = ANY (narrowed)` is true exactly
 * where `value = ANY (full)` is. Anything else (an upper-case UUID in a bigint column, `'007'`, a
 * value the holder lacks, NULL) binds the full array, and PostgreSQL decides as before.
 */
export function narrowGroups(
  groups: readonly string[],
  values: readonly unknown[],
  type: GroupIdType,
): readonly string[] | undefined {
  if (values.length === 0) return undefined
  if (values.length === 1) return narrowOne(groups, values[0], type)
  const members = memberSet(groups)
  const narrowed = new Set<string>()
  for (const value of values) {
    const id = canonicalId(value, type)
    if (id === undefined || !members.has(id)) return undefined
    narrowed.add(id)
  }
  if (narrowed.size === 1 && Object.isFrozen(groups)) return singleton(groups, [...narrowed][0]!)
  return [...narrowed]
}

/**
 * {@link narrowGroups} of one value, allocating nothing when it is one of a frozen array's groups:
 * the holder's own array when that is its only group, else the cached one-group array.
 */
export function narrowOne(
  groups: readonly string[],
  value: unknown,
  type: GroupIdType,
): readonly string[] | undefined {
  const id = canonicalId(value, type)
  if (id === undefined) return undefined
  if (groups.length === 1) {
    if (groups[0] !== id) return undefined
    return Object.isFrozen(groups) ? groups : [id]
  }
  if (!memberSet(groups).has(id)) return undefined
  return Object.isFrozen(groups) ? singleton(groups, id) : [id]
}

const singletons = new WeakMap<readonly string[], Map<string, readonly string[]>>()

/**
 * The one-group array, the same frozen array each time for a given capability and group, so that
 * its encoded parameter is built once (see {@link groupArray}): the common case, a statement
 * whose target group is known, then allocates nothing per request.
 */
function singleton(groups: readonly string[], id: string): readonly string[] {
  let byId = singletons.get(groups)
  if (byId === undefined) {
    byId = new Map()
    singletons.set(groups, byId)
  }
  let array = byId.get(id)
  if (array === undefined) {
    array = Object.freeze([id])
    byId.set(id, array)
  }
  return array
}

/** Element type OIDs and sizes of the arrays sent in binary; text arrays go as literals. */
const BINARY_ELEMENTS = {
  uuid: { oid: 2950, size: 16 },
  bigint: { oid: 20, size: 8 },
  integer: { oid: 23, size: 4 },
} as const
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const INTEGER = /^-?[0-9]{1,19}$/
const arrays = new WeakMap<readonly string[], Buffer | string>()

/**
 * The group array as a parameter value: PostgreSQL's binary array format (a Buffer, which pg
 * sends with the binary format code) for UUIDs and integers, else the text literal. Built once
 * per frozen array.
 *
 * Why binary: measured on PostgreSQL 18 through pg 8, a prepared `SELECT cardinality($1::uuid[])`
 * with 10 000 UUIDs took 3.8 ms with the text literal (370 kB encoded, checked and parsed by
 * `array_in`/`uuid_in` element by element) and 0.43 ms in binary (200 kB copied by `uuid_recv`).
 * An ID that cannot be encoded exactly (not a UUID, outside the integer range) falls back to the
 * text literal, where PostgreSQL refuses it as before.
 */
export function groupArray(groups: readonly string[], type: GroupIdType): Buffer | string {
  let value = arrays.get(groups)
  if (value === undefined) {
    value = (type === 'text' ? undefined : binaryArray(groups, type)) ?? arrayLiteral(groups, type)
    if (Object.isFrozen(groups)) arrays.set(groups, value)
  }
  return value
}

/** `int32 ndim, int32 hasnull, oid elemtype, int32 length, int32 lbound`, then `int32 len, bytes` each. */
function binaryArray(
  groups: readonly string[],
  type: keyof typeof BINARY_ELEMENTS,
): Buffer | undefined {
  const { oid, size } = BINARY_ELEMENTS[type]
  const empty = groups.length === 0
  const buffer = Buffer.alloc((empty ? 12 : 20) + groups.length * (4 + size))
  // An empty array has no dimensions.
  buffer.writeInt32BE(empty ? 0 : 1, 0)
  buffer.writeInt32BE(0, 4)
  buffer.writeUInt32BE(oid, 8)
  if (empty) return buffer
  buffer.writeInt32BE(groups.length, 12)
  buffer.writeInt32BE(1, 16)
  let at = 20
  for (const id of groups) {
    buffer.writeInt32BE(size, at)
    at += 4
    if (type === 'uuid') {
      if (!UUID.test(id)) return undefined
      buffer.write(id.replace(/-/g, ''), at, 'hex')
    } else {
      if (!INTEGER.test(id)) return undefined
      const n = BigInt(id)
      if (type === 'bigint') {
        if (n !== BigInt.asIntN(64, n)) return undefined
        buffer.writeBigInt64BE(n, at)
      } else {
        if (n !== BigInt.asIntN(32, n)) return undefined
        buffer.writeInt32BE(Number(n), at)
      }
    }
    at += size
  }
  return buffer
}

const SAFE_ELEMENT = /^-?[0-9A-Za-z-]+$/
const literals = new WeakMap<readonly string[], string>()

/**
 * The group array as a PostgreSQL array literal, built once per (frozen) array: pg's generic array
 * serialiser escapes element by element, which dominated the cost with thousands of groups. Bare
 * UUIDs and decimal integers need no quoting; anything else is quoted and escaped.
 */
export function arrayLiteral(groups: readonly string[], type: GroupIdType): string {
  let literal = literals.get(groups)
  if (literal === undefined) {
    // Anything but a bare UUID or integer is quoted, so an ID like "1,3" can never become two
    // elements; it then fails the cast instead.
    const items = groups.map((g) =>
      type !== 'text' && SAFE_ELEMENT.test(g) ? g : `"${g.replace(/["\\]/g, '\\$&')}"`,
    )
    literal = `{${items.join(',')}}`
    if (Object.isFrozen(groups)) literals.set(groups, literal)
  }
  return literal
}
