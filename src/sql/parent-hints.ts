/**
 * Parent-group hints: the group a parent row was last seen in, so that a `viaParent` INSERT can
 * bind a one-group array instead of the holder's whole group array.
 *
 * Why: a parent guard compares the parent's group with the holder's groups for the role, and the
 * client cannot know the parent's group, so the statement sent every group: at 10 000 groups a
 * 200 kB `uuid[]` per INSERT, whose transfer into PostgreSQL was most of the statement's cost
 * (bench/README.md: 0.32–0.46× a plain INSERT; the group-column INSERT, whose array is narrowed to
 * its one target group, runs at 1.0×). A hint says "parent `id` was in group G"; when G is one of
 * the holder's groups for the role, the INSERT binds `[G]`.
 *
 * Why this is safe (the guard still decides, in the database, on every statement):
 * - **Narrowing never widens.** The bound array is `[G]` only when G is, as written, one of the
 *   capability's groups for the guard's role (compile.ts's `narrowGroups`): a subset of what the
 *   full statement binds, so `parent.group_id = ANY ([G])` admits a row only where the full array
 *   admits it. An admin's statement has no array and takes no hint.
 * - **A stale hint can only refuse.** A parent that moved to another group fails the narrowed
 *   check; a refusal under a narrowed array forgets the hint and runs the statement again with the
 *   full array, which admits or refuses exactly as without hints, and a refusal there is the typed
 *   denial as before (403/404 from the read guard). A refused statement writes nothing, so the
 *   retry never writes twice; several rows under hints run all-or-nothing, then retry as asked.
 * - **A hint is never an answer.** It is never returned to a caller, never decides alone and never
 *   stands in for the guard: it only chooses which subset of the holder's own groups to send.
 * - **No cross-request leak.** A hint holds a parent key → group ID, values the database already
 *   guards, learned only from rows a guarded INSERT admitted (the parent's group, read in the same
 *   statement's RETURNING). It is shared by every request of the process; a holder whose groups do
 *   not include the hinted group binds the full array as before. What a holder could observe is
 *   timing: a hinted INSERT that is refused takes a second statement, which says that the parent
 *   was once in one of the holder's own groups.
 * - In 'rls' mode the forced policies decide as before: the hint changes only the guard's
 *   parameter, never the signed capability the policies read.
 *
 * Hints apply only from {@link HINT_MIN_GROUPS} groups up: below that the full array costs no more
 * than one group (bench/README.md), and a stale hint would cost a second statement for nothing.
 */
import { LRUCache } from 'lru-cache'
import type { Capability } from '../capability/capability.ts'
import { canonicalId, narrowGroups, narrowOne } from './compile.ts'
import type { GuardNode } from './guard.ts'
import type { Row } from './queryable.ts'

/**
 * The holder's group count for the guard's role from which an INSERT uses hints. Measured with
 * bench/sql.bench.ts's parent-guard INSERT (10⁵ threads): see docs/performance.md.
 */
export const HINT_MIN_GROUPS = 100

/** Hints kept per process: ~200 bytes each, so about 2 MB when full. */
const MAX_HINTS = 10_000

/** A parent key longer than this (as text) is never hinted: keys stay small. */
const MAX_KEY_LENGTH = 200

/** The name of the RETURNING column that carries the parent's group (bookkeeping, never returned). */
export const HINT_COLUMN = '__keyhole_parent_group'

/** The fact field a hinted statement's narrowed group array reads (see {@link hintFacts}). */
const HINT_FIELD = 'group'

/**
 * A guard that is a `viaParent` chain ending in a group check on the last parent: what a hint can
 * narrow. Derived once per guard.
 */
export interface ParentChain {
  /** The inserted row's column (unquoted) that holds the first parent's key. */
  readonly column: string
  /** The role of the chain's group check. */
  readonly role: string
  /** The row expression the group check compares, as renderGuard renders it: `"p1"."group_id"`. */
  readonly compared: string
  /** Identifies the chain (its tables, keys, links and group column) in a hint's key: a number. */
  readonly id: string
  /**
   * The parent's group for the row just inserted, for RETURNING:
   * `(SELECT "p1"."group_id" FROM "discussion_threads" AS "p1" WHERE "p1"."id" = "t"."thread_id" LIMIT 1)`.
   */
  readonly learn: string
}

const chains = new WeakMap<GuardNode, ParentChain | null>()

/**
 * The chain of a guard node, or undefined when the guard is anything else (an `and`, a parent
 * guard that is not a group check, a plain column): such guards bind the full array as before.
 */
export function parentChain(node: GuardNode): ParentChain | undefined {
  if (node.kind !== 'viaParent') return undefined
  let chain = chains.get(node)
  if (chain === undefined) {
    chain = buildChain(node) ?? null
    chains.set(node, chain)
  }
  return chain ?? undefined
}

/** Chain descriptions → short numbers, so that a hint's key stays short to hash. */
const chainNumbers = new Map<string, number>()

function buildChain(node: GuardNode & { kind: 'viaParent' }): ParentChain | undefined {
  const from = [`${node.table.sql} AS "p1"`]
  const where = [`"p1".${node.key} = "t".${node.column}`]
  const id = [`${node.table.sql}.${node.key}`]
  let depth = 1
  let parent = node.parent
  while (parent.kind === 'viaParent') {
    depth++
    from.push(`${parent.table.sql} AS "p${depth}"`)
    where.push(`"p${depth}".${parent.key} = "p${depth - 1}".${parent.column}`)
    id.push(`${parent.column}>${parent.table.sql}.${parent.key}`)
    parent = parent.parent
  }
  if (parent.kind !== 'inGroup') return undefined
  const compared = `"p${depth}".${parent.column}`
  const description = `${id.join(' ')} ${parent.column}`
  let number = chainNumbers.get(description)
  if (number === undefined) chainNumbers.set(description, (number = chainNumbers.size))
  return Object.freeze({
    // The node's column is quoted and checked (guard.ts): the bare name is what the values use.
    column: node.column.slice(1, -1),
    role: parent.role,
    compared,
    id: `${number}`,
    learn: `(SELECT ${compared} FROM ${from.join(', ')} WHERE ${where.join(' AND ')} LIMIT 1)`,
  })
}

/**
 * The hint key of a parent key value, or undefined for a value that is never hinted. The value is
 * kept as written (compile.ts's `canonicalId` for 'text'): the chain does not know the type of
 * the parent's key column, and folding a UUID's case would make two parents of a text key one. A
 * UUID spelled in upper case is then only a miss, learned under its own spelling.
 */
function keyOf(chain: ParentChain, value: unknown): string | undefined {
  const text = canonicalId(value, 'text')
  if (text === undefined || text.length > MAX_KEY_LENGTH) return undefined
  return `${chain.id}\u0000${typeof value === 'string' ? 's' : 'n'}${text}`
}

/** A bounded, least-recently-used map of parent key → the group the parent was last seen in. */
export class ParentHints {
  readonly #hints: LRUCache<string, string>

  constructor(max: number = MAX_HINTS) {
    this.#hints = new LRUCache({ max })
  }

  /** How many hints are kept. */
  get size(): number {
    return this.#hints.size
  }

  /** The hinted group of the parent whose key is `value`, if any. */
  get(chain: ParentChain, value: unknown): string | undefined {
    const key = keyOf(chain, value)
    return key === undefined ? undefined : this.#hints.get(key)
  }

  /**
   * Records the group an admitted INSERT read for its parent, as written (a NULL, a fraction or an
   * unsafe integer is skipped): narrowGroups compares it with the holder's groups by their type.
   */
  learn(chain: ParentChain, value: unknown, group: unknown): void {
    const key = keyOf(chain, value)
    const id = canonicalId(group, 'text')
    if (key !== undefined && id !== undefined) this.#hints.set(key, id)
  }

  /** Drops the hint of a parent whose narrowed statement refused. */
  forget(chain: ParentChain, value: unknown): void {
    const key = keyOf(chain, value)
    if (key !== undefined) this.#hints.delete(key)
  }
}

/** The hints every guarded INSERT shares unless given its own (`parentHints`). */
export const sharedParentHints = new ParentHints()

/** How one INSERT uses hints: its chain and the hint store. */
export interface Hinting {
  readonly chain: ParentChain
  readonly hints: ParentHints
}

/**
 * Whether an INSERT guarded by `node` uses hints: a parent chain whose first link is one of the
 * values, a non-admin holder with at least {@link HINT_MIN_GROUPS} groups for its role, and no
 * per-row column flags (they would share the narrowed array without a refusal to retry on).
 */
export function hintingFor(
  node: GuardNode,
  columns: readonly string[],
  capability: Capability,
  hasView: boolean,
  hints: ParentHints,
): Hinting | undefined {
  if (capability.isAdmin || hasView) return undefined
  const chain = parentChain(node)
  if (chain === undefined || !columns.includes(chain.column)) return undefined
  if (capability.binding(chain.role).groups.length < HINT_MIN_GROUPS) return undefined
  return { chain, hints }
}

/**
 * The hinted groups of `rows`' parents, as the fact a hinted statement narrows its array with:
 * one row gives one fact (`{ group }`), which the statement binds through the one-value path of
 * compile.ts (no list of values built per call); several give one fact per row (`[{ group }, …]`).
 * Undefined when any row's parent has no hint or a hint outside the holder's groups for the role:
 * then the statement binds the full array.
 */
export function hintFacts(
  hinting: Hinting,
  rows: Row | readonly Row[],
  capability: Capability,
): Row | Row[] | undefined {
  const { chain, hints } = hinting
  const groups = capability.binding(chain.role).groups
  if (!Array.isArray(rows)) {
    const group = hints.get(chain, (rows as Row)[chain.column])
    if (group === undefined) return undefined
    return narrowOne(groups, group, capability.groupIdType) === undefined
      ? undefined
      : { [HINT_FIELD]: group }
  }
  const facts: Row[] = []
  for (const row of rows as readonly Row[]) {
    const group = hints.get(chain, row[chain.column])
    if (group === undefined) return undefined
    facts.push({ [HINT_FIELD]: group })
  }
  const values = facts.map((f) => f[HINT_FIELD])
  return narrowGroups(groups, values, capability.groupIdType) === undefined ? undefined : facts
}

/** The fact (index `index` of the statement's facts) a hinted statement's group array reads. */
export function hintFact(index: number) {
  return { kind: 'field', index, key: HINT_FIELD } as const
}
