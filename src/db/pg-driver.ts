/**
 * The pg driver boundary: the part of node-postgres (`pg`, a peer dependency, `^8.11.0`) keyhole
 * relies on, declared here and loaded here only, on first use — as Kysely's
 * `postgres-dialect-config.ts` declares "the subset of pg driver's Pool that kysely needs".
 *
 * pg is an optional peer: the token, capability and guard parts (and `keyhole token`) run without
 * it. What opens a connection of its own (`setup`, `migrate`, `keyhole check`) and the session's
 * pipeline load it here; without pg they throw one error saying to install it. Loading it from the
 * application's own install keeps one pg in the process, so the pipeline parses rows with the same
 * `Result` and type parsers as the application's pool.
 *
 * The internals the pipeline needs (`pg/lib/result.js`, `pg/lib/utils.js`, reached as pg-cursor
 * reaches them) are tested in CI against the lowest and the highest pg the peer range allows.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** A query result, in the part keyhole reads. */
export interface PgQueryResult<R> {
  readonly command: string
  readonly rowCount: number | null
  readonly rows: R[]
}

/** The part of a pg `Client` keyhole's own connections (setup, migrate, `keyhole check`) use. */
export interface PgClient {
  connect(): Promise<unknown>
  // `any` by default, as pg's own `query`: the caller names the row type it selected.
  query<R = any>(text: string, values?: unknown[]): Promise<PgQueryResult<R>>
  end(): Promise<void>
}

/** The part of the `pg` module keyhole uses (all present since pg 8.11.0). */
export interface PgModule {
  readonly Client: new (config: { connectionString: string }) => PgClient
  escapeIdentifier(name: string): string
  escapeLiteral(value: string): string
}

/** pg's `Result` (pg/lib/result.js): collects one statement's rows with pg's type parsers. */
export interface PgResult {
  command: string | null
  rowCount: number | null
  rows: unknown[]
  fields: unknown[]
  addFields(fields: unknown[]): void
  addCommandComplete(message: unknown): void
  parseRow(fields: unknown[]): unknown
  addRow(row: unknown): void
}

/** What the pipeline takes from pg's internals. */
export interface PgInternals {
  readonly Result: new (rowMode?: string, types?: unknown) => PgResult
  /** pg's value serialiser (pg/lib/utils.js), as `client.query` applies it to each value. */
  readonly prepareValue: (value: unknown) => unknown
}

let driver: PgModule | undefined
let internals: PgInternals | undefined

/**
 * Requires `id` (pg or a file of pg), or throws saying that `feature` needs pg installed. Another
 * failure (a dependency of pg missing, a path pg no longer exports) is thrown as it is.
 */
export function requirePg(id: string, feature: string, load: (id: string) => unknown = require) {
  try {
    return load(id)
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown }
    if (e.code !== 'MODULE_NOT_FOUND' || !String(e.message).includes(`'${id}'`)) throw error
    throw Object.assign(
      new Error(
        `${feature} needs the pg package (node-postgres ^8.11.0), which is not installed: npm install pg`,
        { cause: error },
      ),
      { code: 'ERR_MODULE_NOT_FOUND' },
    )
  }
}

/** The `pg` module, loaded on first use; `feature` names what needs it in the error without pg. */
export function loadPg(feature: string): PgModule {
  return (driver ??= requirePg('pg', feature) as PgModule)
}

/** pg's `Result` and `prepareValue`, loaded on the first pipeline. */
export function loadPgInternals(): PgInternals {
  return (internals ??= {
    Result: requirePg('pg/lib/result.js', "keyhole's database session") as PgInternals['Result'],
    prepareValue: (requirePg('pg/lib/utils.js', "keyhole's database session") as PgInternals)
      .prepareValue,
  })
}
