/**
 * Typed tables: the application's tables as Kysely's `Database` interface describes them
 * (`interface DB { discussion_threads: { id: Generated<string>; group_id: string; … } }`), so a
 * handle bound to `definePolicies<DB>(…)` checks table names, `where` keys and value types,
 * `values`, `set`, `columns`, `orderBy`, `returning` and result rows at compile time. Types only:
 * nothing here exists at run time, and keyhole never imports Kysely — its `ColumnType` wrapper
 * (`Generated<T>` is `ColumnType<T, T | undefined, T>`) is read by shape.
 */
import type { ColumnOperators, Filter, GroupKind } from './filter.ts'
import type { Guard } from './guard.ts'
import type { InsertResult } from './guarded-insert.ts'
import type { SortDirection } from './order-by.ts'
import type { WriteResult } from './write-outcome.ts'

/** The value a column reads as (Kysely's `SelectType`). */
export type SelectType<T> = T extends { readonly __select__: infer S } ? S : T
/** The value an insert may give the column (Kysely's `InsertType`). */
export type InsertType<T> = T extends { readonly __insert__: infer I } ? I : T
/** The value an update may set (Kysely's `UpdateType`). */
export type UpdateType<T> = T extends { readonly __update__: infer U } ? U : T

/** The table names of `DB`. */
export type TableName<DB> = keyof DB & string
/** The column names of table `T`. */
export type ColumnName<DB, T extends TableName<DB>> = keyof DB[T] & string

/** A row of `T` as it is read. */
export type RowOf<DB, T extends TableName<DB>> = {
  -readonly [K in ColumnName<DB, T>]: SelectType<DB[T][K]>
}

type OptionalInsertKeys<R> = {
  [K in keyof R]-?: undefined extends InsertType<R[K]>
    ? K
    : null extends InsertType<R[K]>
      ? K
      : never
}[keyof R]

/**
 * The values of an insert into `T`: a column whose insert type admits `undefined` (`Generated`) or
 * `null` may be left out, as in Kysely's `Insertable`.
 */
export type InsertOf<DB, T extends TableName<DB>> = {
  readonly [K in Exclude<ColumnName<DB, T>, OptionalInsertKeys<DB[T]>>]: InsertType<DB[T][K]>
} & {
  readonly [K in OptionalInsertKeys<DB[T]> & string]?: InsertType<DB[T][K]> | undefined
}

/** The `set` of an update of `T`: any columns, each its update type (`undefined`: left alone). */
export type UpdateOf<DB, T extends TableName<DB>> = {
  readonly [K in ColumnName<DB, T>]?: UpdateType<DB[T][K]> | undefined
}

/** What a typed `where` takes under a column key: its value, `null`, an `op` filter or a guard. */
export type ColumnCondition<V> = V | null | Filter<V, 'column'> | Filter<unknown, GroupKind> | Guard

/** What a typed `where` takes under a key that is no column: a label for a guard or a group. */
export type LabelledCondition = Guard | Filter<unknown, GroupKind>

/**
 * A typed `where` for the row `R`, checked key by key against the object `W` given: a column key
 * takes its column's value type, any other key only a guard or an `op.or/and/not` group.
 */
export type TypedWhere<R, W> = {
  readonly [K in keyof W]: K extends keyof R ? ColumnCondition<SelectType<R[K]>> : LabelledCondition
}

/** `op`'s operators for a column of type `V` (the same as {@link ColumnOperators}). */
export type TypedOperators<V> = ColumnOperators<V>

/** An `orderBy` over the columns of `R`. */
export type TypedOrderBy<R> =
  (keyof R & string) | readonly ((keyof R & string) | readonly [keyof R & string, SortDirection])[]

/** A keyset cursor for `R`: the order columns' values (a row of `R` will do). */
export type Cursor<R> = { readonly [K in keyof R]?: SelectType<R[K]> }

/** The options of a typed `select`; `C`, the columns read, is inferred from `columns`. */
export interface TypedSelectOptions<R, C extends keyof R> {
  readonly columns?: '*' | readonly C[]
  readonly orderBy?: TypedOrderBy<R>
  readonly limit?: number
  readonly offset?: number
  readonly after?: Cursor<R>
}

/** The options of a typed insert: `returning` names columns of the table. */
export interface TypedInsertOptions<C> {
  readonly returning?: '*' | readonly C[]
  readonly atomic?: boolean
  readonly chosenKeys?: readonly C[]
}

/** The options of a typed update. */
export interface TypedUpdateOptions<C> {
  readonly returning?: '*' | readonly C[]
  readonly chosenKeys?: readonly C[]
}

/**
 * The request-bound handle over typed tables: the same calls as the untyped `PolicyHandle`, each
 * checked against `DB`. A table must be a key of `DB`; whether the policies allow the operation on
 * it is still decided when the call runs (500 `KH_NO_POLICY` otherwise).
 */
export interface TypedCalls<DB> {
  /** One row → the inserted row (`returning` picks its columns). */
  insert<T extends TableName<DB>, C extends ColumnName<DB, T> = ColumnName<DB, T>>(
    table: T,
    values: InsertOf<DB, T>,
    options?: TypedInsertOptions<C>,
  ): Promise<Pick<RowOf<DB, T>, C>>
  /** Several rows → which were inserted and which refused. */
  insert<T extends TableName<DB>, C extends ColumnName<DB, T> = ColumnName<DB, T>>(
    table: T,
    values: readonly InsertOf<DB, T>[],
    options?: TypedInsertOptions<C>,
  ): Promise<InsertResult<Pick<RowOf<DB, T>, C>>>
  select<
    T extends TableName<DB>,
    W extends TypedWhere<DB[T], W> = {},
    C extends ColumnName<DB, T> = ColumnName<DB, T>,
  >(
    table: T,
    where?: W,
    options?: TypedSelectOptions<DB[T], C>,
  ): Promise<Pick<RowOf<DB, T>, C>[]>
  count<T extends TableName<DB>, W extends TypedWhere<DB[T], W> = {}>(
    table: T,
    where?: W,
  ): Promise<number>
  update<
    T extends TableName<DB>,
    W extends TypedWhere<DB[T], W>,
    C extends ColumnName<DB, T> = ColumnName<DB, T>,
  >(
    table: T,
    where: W,
    set: UpdateOf<DB, T>,
    options?: TypedUpdateOptions<C>,
  ): Promise<WriteResult<Pick<RowOf<DB, T>, C>>>
  /** `returning: '*'`: the deleted rows whole. */
  delete<T extends TableName<DB>, W extends TypedWhere<DB[T], W>>(
    table: T,
    where: W,
    options: { readonly returning: '*' },
  ): Promise<WriteResult<RowOf<DB, T>>>
  /** `returning` (default `[]`, nothing) picks the columns of the deleted rows. */
  delete<
    T extends TableName<DB>,
    W extends TypedWhere<DB[T], W>,
    C extends ColumnName<DB, T> = never,
  >(
    table: T,
    where: W,
    options?: { readonly returning?: readonly C[] },
  ): Promise<WriteResult<Pick<RowOf<DB, T>, C>>>
}
