/**
 * What every guarded statement shares: parameter numbering, the compiled-statement cache and
 * binding a capability's values per request. A statement is compiled once per shape (table,
 * operation, column set, guard, admin or not) and cached; a request only computes parameters.
 */
import { createHash } from 'node:crypto'
import type { Capability, GroupIdType } from '../capability/capability.ts'
import type { GuardTarget } from './render-guard.ts'

/** Where one parameter's value comes from when the statement is bound. */
export type ParamSource =
  | { readonly kind: 'groups'; readonly role: string }
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

  constructor(admin: boolean, groupIdType: GroupIdType) {
    this.admin = admin
    this.#groupIdType = groupIdType
  }

  groups(role: string): string {
    this.#roles.add(role)
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
        sources.push(
          token[0] === 'g'
            ? { kind: 'groups', role: token.slice(1) }
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
const cache = new Map<string, CompiledStatement>()

/**
 * The compiled statement for `key`, built on first use. Bounded: shapes can come from request
 * input (the keys of an inserted object), so the oldest entry goes when the cache is full.
 */
export function cachedStatement(key: string, build: () => CompiledStatement): CompiledStatement {
  let statement = cache.get(key)
  if (statement === undefined) {
    statement = build()
    if (cache.size >= MAX_STATEMENTS) cache.delete(cache.keys().next().value as string)
    cache.set(key, statement)
  }
  return statement
}

/** The cache-key prefix every statement shares: admin or not, and the group-ID type. */
export function capabilityKey(capability: Capability): string {
  return `${capability.isAdmin ? 'A' : 'U'}:${capability.groupIdType}`
}

/** The parameter values for one request, in the statement's order. */
export function bindParameters(
  statement: CompiledStatement,
  capability: Capability,
  inputs: readonly unknown[],
): unknown[] {
  // binding() throws for a role outside the hierarchy: a typo in a guard must fail, never grant.
  for (const role of statement.roles) capability.binding(role)
  return statement.sources.map((source) =>
    source.kind === 'groups'
      ? arrayLiteral(capability.binding(source.role).groups, capability.groupIdType)
      : source.kind === 'subject'
        ? capability.subject
        : inputs[source.index],
  )
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
