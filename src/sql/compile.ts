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
 */
export class StatementParams implements GuardTarget {
  readonly sources: ParamSource[] = []
  readonly roles: string[] = []
  readonly castSubjectColumn = false
  readonly admin: boolean
  readonly #groupIdType: GroupIdType
  readonly #groups = new Map<string, string>()
  #subject: string | undefined

  constructor(admin: boolean, groupIdType: GroupIdType) {
    this.admin = admin
    this.#groupIdType = groupIdType
  }

  #add(source: ParamSource): string {
    this.sources.push(source)
    return `$${this.sources.length}`
  }

  groups(role: string): string {
    let sql = this.#groups.get(role)
    if (sql === undefined) {
      sql = `${this.#add({ kind: 'groups', role })}::${this.#groupIdType}[]`
      this.#groups.set(role, sql)
      this.roles.push(role)
    }
    return sql
  }

  subject(): string {
    this.#subject ??= this.#add({ kind: 'subject' })
    return this.#subject
  }

  /** The parameter for the request's `index`th input value. */
  input(index: number): string {
    return this.#add({ kind: 'input', index })
  }

  /** Notes a role that folded away (admin) so the capability still validates it. */
  noteRole(role: string): void {
    if (!this.roles.includes(role)) this.roles.push(role)
  }

  compile(text: string): CompiledStatement {
    const name = `keyhole_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`
    return Object.freeze({
      text,
      name,
      sources: Object.freeze([...this.sources]),
      roles: Object.freeze([...this.roles]),
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
      ? capability.binding(source.role).groups
      : source.kind === 'subject'
        ? capability.subject
        : inputs[source.index],
  )
}
