/**
 * What keyhole/testing reads of a table from PostgreSQL's catalogue: its columns (type, NOT NULL,
 * default), its primary key, its one-column unique keys and its one-column foreign keys. Read as
 * the scratch database's administrator, once per table.
 */
import type { AdminClient } from './scratch-database.ts'

/** One column, as the fixture generator needs it. */
export interface ColumnInfo {
  readonly name: string
  /** `format_type`, for messages: `uuid`, `character varying(200)`. */
  readonly type: string
  /** The base type's name (`uuid`, `int4`, `text`, …); a domain's base type. */
  readonly base: string
  /** `e` for an enum, `A` for an array (pg_type's typcategory). */
  readonly category: string
  /** An enum's labels, in order. */
  readonly labels: readonly string[]
  readonly notNull: boolean
  /** A default, an identity or a generated column: the generator leaves it to PostgreSQL. */
  readonly defaulted: boolean
  /** Written by PostgreSQL only (GENERATED ALWAYS AS …): never given a value. */
  readonly generated: boolean
}

/** A one-column foreign key: this column refers to `table`.`column`. */
export interface ForeignKey {
  readonly column: string
  /** The referenced table as SQL (`regclass` text: quoted and qualified where needed). */
  readonly table: string
  readonly key: string
}

export interface TableInfo {
  /** The table as SQL (`regclass` text). */
  readonly sql: string
  readonly columns: readonly ColumnInfo[]
  readonly primaryKey: readonly string[]
  /** Columns that are a unique key on their own (the primary key's one column included). */
  readonly unique: ReadonlySet<string>
  readonly foreignKeys: readonly ForeignKey[]
}

const COLUMNS = `
SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
  coalesce(b.typname, t.typname) AS base, coalesce(b.typcategory, t.typcategory) AS category,
  coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum AS e
    WHERE e.enumtypid = coalesce(b.oid, t.oid)), '{}') AS labels,
  a.attnotnull AS "notNull", (a.atthasdef OR a.attidentity <> '') AS defaulted,
  a.attgenerated <> '' AS generated
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type AS b ON t.typtype = 'd' AND b.oid = t.typbasetype
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

const KEYS = `
SELECT i.indisprimary AS "primary", array_agg(a.attname::text ORDER BY k.ord) AS columns
FROM pg_catalog.pg_index AS i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL
GROUP BY i.indexrelid, i.indisprimary`

const FOREIGN_KEYS = `
SELECT a.attname AS column, c.confrelid::regclass::text AS table, r.attname AS key
FROM pg_catalog.pg_constraint AS c
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_catalog.pg_attribute AS r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
WHERE c.contype = 'f' AND c.conrelid = $1::regclass AND cardinality(c.conkey) = 1`

/** Reads `table` (SQL text PostgreSQL's `regclass` accepts) from the catalogue. */
export async function readTable(client: AdminClient, table: string): Promise<TableInfo> {
  const sql = (await client.query<{ sql: string }>('SELECT $1::regclass::text AS sql', [table]))
    .rows[0]!.sql
  const columns = (await client.query<ColumnInfo>(COLUMNS, [table])).rows
  const keys = (await client.query<{ primary: boolean; columns: string[] }>(KEYS, [table])).rows
  const foreignKeys = (await client.query<ForeignKey>(FOREIGN_KEYS, [table])).rows
  return {
    sql,
    columns,
    primaryKey: keys.find((k) => k.primary)?.columns ?? [],
    unique: new Set(keys.filter((k) => k.columns.length === 1).map((k) => k.columns[0]!)),
    foreignKeys,
  }
}
