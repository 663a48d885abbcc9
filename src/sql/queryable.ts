/** What keyhole needs from a database handle: pg's `query(config)` (a Pool, PoolClient, Client…). */
export interface QueryConfig {
  readonly text: string
  readonly values?: unknown[]
  /** A named prepared statement: parsed and planned once per connection. */
  readonly name?: string
}

/** The result rows, as pg returns them. */
export interface QueryResultLike<R> {
  readonly rows: R[]
}

/** Anything with pg's `query` shape: `pg.Pool`, `pg.PoolClient`, `pg.Client`, a request session. */
export interface Queryable {
  // `any`: keeps pg's own generic overloads assignable to this shape.
  query(config: QueryConfig): Promise<QueryResultLike<any>>
}

/** A row as pg returns it. */
export type Row = Record<string, unknown>

/** Options every guarded statement takes. */
export interface StatementOptions {
  /**
   * Run as a named prepared statement (parsed and planned once per connection). Needs PgBouncer
   * 1.21+ with `max_prepared_statements` in transaction mode.
   * @default true
   */
  readonly prepared?: boolean
}
