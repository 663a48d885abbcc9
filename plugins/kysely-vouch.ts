/**
 * Which Kysely statements keyhole vouches for: those whose text keyhole's own Kysely compiler
 * writes from an operation-node tree that can carry no SQL text of its own. Such a statement is
 * as much keyhole's as a generated one (src/sql/generated-statement.ts): every string in it is a
 * keyword the compiler writes, an identifier it quotes, a `$n` placeholder, or a number, boolean
 * or null; it can name tables and columns but call no function outside a fixed list of
 * aggregates, and it cannot hold a second statement, a comment or a string literal. So it leaves
 * nothing in the session of a pooled connection, and a request made only of such statements
 * skips `keyhole.reset_session()`.
 *
 * The trust is in the text, never in the object that brings it: the CompiledQuery may come from
 * any Kysely or be hand-made (`{ sql: evil, query: innocentTree }`). So the tree is copied, field
 * by field, into fresh objects holding only what the allowlist below admits (DEFAULT DENY: an
 * unknown kind, an unknown field, a string outside its list refuses the whole tree); the copy is
 * compiled with keyhole's own compiler; the statement is vouched for only when that text equals
 * the text to be sent exactly, and a scan of it finds no comment, string, dollar quote,
 * semicolon or NUL outside quoted identifiers. Reading each field once, into the copy, is what
 * makes a getter or a Proxy that answers one value to the check and another to the compiler
 * useless. A verdict is kept per text: a text proven once is safe forever.
 */
import { PostgresQueryCompiler, type CompiledQuery } from 'kysely'

/**
 * How the compiler (kysely 0.28's default-query-compiler.js and postgres-query-compiler.js) writes
 * each kind admitted, so why none writes text of its own:
 * - 'node' / 'nodes': a child node or a list of them, visited (and so checked) in turn;
 * - a function: a scalar the compiler writes or tests, checked (it throws when refused) and
 *   returned for the copy.
 */
type FieldRule = 'node' | 'nodes' | ((value: unknown) => unknown)

/** Thrown inside the walk: the tree is refused (any other error refuses it too). */
class Refused extends Error {}

function refuse(): never {
  throw new Refused()
}

const flag = (value: unknown) => (typeof value === 'boolean' ? value : refuse())

/** A flag admitted only unset: `replace: false` is 'insert', true would write 'replace'. */
const unset = (value: unknown) => (value === false ? value : refuse())

const oneOf = (allowed: ReadonlySet<string>) => (value: unknown) =>
  typeof value === 'string' && allowed.has(value) ? value : refuse()

/**
 * The operators `visitOperator` appends as they are: Kysely's OPERATORS list (0.28), copied here
 * because Kysely's exported array is mutable.
 */
// prettier-ignore
const OPERATORS = new Set([
  '=', '==', '!=', '<>', '>', '>=', '<', '<=', 'in', 'not in', 'is', 'is not', 'like', 'not like',
  'match', 'ilike', 'not ilike', '@>', '<@', '^@', '&&', '?', '?&', '?|', '!<', '!>', '<=>', '!~',
  '~', '~*', '!~*', '@@', '@@@', '!!', '<->', 'regexp', 'is distinct from',
  'is not distinct from', '+', '-', '*', '/', '%', '^', '&', '|', '#', '<<', '>>', '||', '->',
  '->>', 'not', 'exists', 'not exists', 'between', 'between symmetric',
])

/** `visitAggregateFunction` appends `func` as it is: only these built-in aggregates. */
// prettier-ignore
const AGGREGATES = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'json_agg', 'jsonb_agg', 'string_agg',
  'bool_and', 'bool_or', 'every',
])

/** `visitJoin` writes JOIN_TYPE_SQL[joinType]: PostgreSQL's joins (not 'Using', nor APPLY). */
// prettier-ignore
const JOIN_TYPES = new Set([
  'InnerJoin', 'LeftJoin', 'RightJoin', 'FullJoin', 'CrossJoin', 'LateralInnerJoin',
  'LateralLeftJoin', 'LateralCrossJoin',
])

/**
 * `visitSelectModifier` writes SELECT_MODIFIER_SQL[modifier]: the row locks (transaction-scoped,
 * released with the request's transaction), their NOWAIT / SKIP LOCKED, and DISTINCT.
 */
// prettier-ignore
const SELECT_MODIFIERS = new Set([
  'ForUpdate', 'ForNoKeyUpdate', 'ForShare', 'ForKeyShare', 'NoWait', 'SkipLocked', 'Distinct',
])

/**
 * The fragments `visitRaw` may append: those Kysely's own builders write through a RawNode
 * ('' around `sql.lit(n)`'s value, `join.onTrue()`'s 'true', `orderBy(x, 'asc' | 'desc')`). Any
 * `sql` template, `sql.raw` or `sql.ref` carries text of its own and is refused.
 */
const RAW_FRAGMENTS = new Set(['', 'true', 'false', 'asc', 'desc'])

/**
 * `visitDataType` appends `dataType` as it is. Kysely's builders accept only its
 * SIMPLE_COLUMN_DATA_TYPES and COLUMN_DATA_TYPE_REGEX (one or two words, `(n)` or `(n, m)`); this
 * admits words of lower-case letters and digits, a modifier of digits, and `[]`: a type name
 * cannot call a function (`setseed(1)` would be read as a type with a modifier), and no
 * parenthesis can close the cast.
 */
const DATA_TYPE = /^[a-z][a-z0-9]*(?: [a-z][a-z0-9]*){0,3}(?:\(\d{1,5}(?:, \d{1,5})?\))?(?:\[\])?$/

/** A parameter (`$n`): its value never reaches the text, so the copy holds none. */
const parameter = () => undefined

/** PostgreSQL's limit on a statement's parameters. */
const MAX_PARAMETERS = 65_535

/**
 * The allowlist: each kind admitted, each of its fields, and why the compiler writes nothing of
 * the node but fixed keywords, quoted identifiers, placeholders and its children.
 */
const KINDS: ReadonlyMap<string, Readonly<Record<string, FieldRule>>> = new Map<
  string,
  Record<string, FieldRule>
>([
  // The roots. `explain`, `top`, `fetch`, `setOperations`, `output`, `orAction`, `replace`,
  // `ignore`, `onDuplicateKey` and an update's or delete's `orderBy`/`limit` are left out: each is
  // refused where present. Each writes 'select' / 'insert into' / 'update' / 'delete' and its
  // clauses' fixed keywords ('from', 'where', 'returning', 'default values', …) around children.
  [
    'SelectQueryNode',
    {
      with: 'node',
      distinctOn: 'nodes',
      frontModifiers: 'nodes',
      selections: 'nodes',
      from: 'node',
      joins: 'nodes',
      where: 'node',
      groupBy: 'node',
      having: 'node',
      orderBy: 'node',
      limit: 'node',
      offset: 'node',
      endModifiers: 'nodes',
    },
  ],
  [
    'InsertQueryNode',
    {
      with: 'node',
      into: 'node',
      columns: 'nodes',
      values: 'node',
      defaultValues: flag,
      replace: unset,
      ignore: unset,
      onConflict: 'node',
      returning: 'node',
      endModifiers: 'nodes',
    },
  ],
  [
    'UpdateQueryNode',
    {
      with: 'node',
      table: 'node',
      updates: 'nodes',
      from: 'node',
      joins: 'nodes',
      where: 'node',
      returning: 'node',
      endModifiers: 'nodes',
    },
  ],
  [
    'DeleteQueryNode',
    {
      with: 'node',
      from: 'node',
      using: 'node',
      joins: 'nodes',
      where: 'node',
      returning: 'node',
      endModifiers: 'nodes',
    },
  ],
  // `"` + name + `"`, every `"` of the name doubled (PostgresQueryCompiler.sanitizeIdentifier):
  // the name cannot end the quoted identifier, whatever it holds.
  ['IdentifierNode', { name: (value) => (typeof value === 'string' ? value : refuse()) }],
  // Children only, with '.', ' as ', ', ' or nothing between them.
  ['TableNode', { table: 'node' }],
  ['ListNode', { items: 'nodes' }], // an update of several tables: ', '
  ['SchemableIdentifierNode', { schema: 'node', identifier: 'node' }],
  ['ColumnNode', { column: 'node' }],
  ['ReferenceNode', { table: 'node', column: 'node' }],
  ['AliasNode', { node: 'node', alias: 'node' }],
  ['SelectionNode', { selection: 'node' }],
  ['SelectAllNode', {}], // '*'
  ['FromNode', { froms: 'nodes' }], // 'from '
  ['WhereNode', { where: 'node' }], // 'where '
  ['HavingNode', { having: 'node' }], // 'having '
  ['UsingNode', { tables: 'nodes' }], // 'using '
  ['JoinNode', { joinType: oneOf(JOIN_TYPES), table: 'node', on: 'node' }],
  ['OnNode', { on: 'node' }], // 'on '
  ['AndNode', { left: 'node', right: 'node' }], // ' and '
  ['OrNode', { left: 'node', right: 'node' }], // ' or '
  ['ParensNode', { node: 'node' }], // '(' ')'
  ['BinaryOperationNode', { leftOperand: 'node', operator: 'node', rightOperand: 'node' }],
  ['UnaryOperationNode', { operator: 'node', operand: 'node' }],
  ['OperatorNode', { operator: oneOf(OPERATORS) }],
  // A parameter, or (immediate) value.toString() of a finite number, a boolean, or 'null':
  // never a string (appendStringLiteral) nor a Date or bigint. Checked in copyNode.
  ['ValueNode', { value: (value) => value, immediate: flag }],
  ['ValueListNode', { values: 'nodes' }], // '(' ', ' ')'
  // '(' and one placeholder per value: only the count reaches the text.
  [
    'PrimitiveValueListNode',
    {
      values: (value) => {
        const length = Array.isArray(value) ? value.length : Infinity
        return length <= MAX_PARAMETERS ? Array.from({ length }, parameter) : refuse()
      },
    },
  ],
  ['CastNode', { expression: 'node', dataType: 'node' }], // 'cast(' ' as ' ')'
  [
    'DataTypeNode',
    {
      dataType: (value) => (typeof value === 'string' && DATA_TYPE.test(value) ? value : refuse()),
    },
  ],
  // func '(' ['distinct '] children [order by] ')' [' within group (' ')'] [' filter(' ')']; no
  // `over` (a window).
  [
    'AggregateFunctionNode',
    {
      func: oneOf(AGGREGATES),
      distinct: flag,
      aggregated: 'nodes',
      orderBy: 'node',
      withinGroup: 'node',
      filter: 'node',
    },
  ],
  ['OrderByNode', { items: 'nodes' }], // 'order by '
  // ' nulls ' + nulls as it is: only 'first' or 'last'; no `collation`.
  [
    'OrderByItemNode',
    { orderBy: 'node', direction: 'node', nulls: oneOf(new Set(['first', 'last'])) },
  ],
  ['GroupByNode', { items: 'nodes' }], // 'group by '
  ['GroupByItemNode', { groupBy: 'node' }],
  ['LimitNode', { limit: 'node' }], // 'limit '
  ['OffsetNode', { offset: 'node' }], // 'offset '
  ['ValuesNode', { values: 'nodes' }], // 'values '
  ['DefaultInsertValueNode', {}], // 'default'
  ['ColumnUpdateNode', { column: 'node', value: 'node' }], // ' = '
  ['ReturningNode', { selections: 'nodes' }], // 'returning '
  // 'on conflict', ' (' columns ')' or ' on constraint ' identifier or ' (' expression ')',
  // ' do nothing' or ' do update set ' updates, their where clauses.
  [
    'OnConflictNode',
    {
      columns: 'nodes',
      constraint: 'node',
      indexExpression: 'node',
      indexWhere: 'node',
      doNothing: flag,
      updates: 'nodes',
      updateWhere: 'node',
    },
  ],
  // SELECT_MODIFIER_SQL[modifier], ' of ' and children; no `rawModifier`.
  ['SelectModifierNode', { modifier: oneOf(SELECT_MODIFIERS), of: 'nodes' }],
  // 'with ' ['recursive '], name ' as ' ['not '] ['materialized '] expression, name '(' columns ')'.
  ['WithNode', { recursive: flag, expressions: 'nodes' }],
  ['CommonTableExpressionNode', { name: 'node', materialized: flag, expression: 'node' }],
  ['CommonTableExpressionNameNode', { table: 'node', columns: 'nodes' }],
  // Each fragment, then the parameter node after it: fragments only from RAW_FRAGMENTS.
  [
    'RawNode',
    {
      sqlFragments: (value) =>
        Array.isArray(value) ? Array.from(value, oneOf(RAW_FRAGMENTS)) : refuse(),
      parameters: 'nodes',
    },
  ],
])

const ROOTS = new Set(['SelectQueryNode', 'InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode'])

/**
 * A copy of `node` holding only what {@link KINDS} admits, each field read once.
 * @throws whenever anything is refused.
 */
function copyNode(node: unknown): object {
  if (typeof node !== 'object' || node === null) refuse()
  const kind: unknown = (node as { kind?: unknown }).kind
  const rules = typeof kind === 'string' ? KINDS.get(kind) : undefined
  if (rules === undefined) refuse()
  const copy: Record<string, unknown> = { kind }
  for (const key of Object.keys(node)) {
    if (key === 'kind') continue
    const value: unknown = (node as Record<string, unknown>)[key]
    if (value === undefined) continue
    const rule = (Object.hasOwn(rules, key) ? rules[key] : undefined) ?? refuse()
    copy[key] =
      rule === 'node' ? copyNode(value) : rule === 'nodes' ? copyNodes(value) : rule(value)
  }
  if (kind === 'ValueNode' && copy.immediate === true && !literal(copy.value)) refuse()
  return copy
}

function copyNodes(nodes: unknown): object[] {
  return Array.isArray(nodes) ? Array.from(nodes as unknown[], copyNode) : refuse()
}

/** What `appendImmediateValue` writes with toString() alone: a finite number, a boolean, null. */
function literal(value: unknown): boolean {
  return (
    (typeof value === 'number' && Number.isFinite(value)) ||
    typeof value === 'boolean' ||
    value === null
  )
}

/**
 * Whether `text`, outside its quoted identifiers (`"…"`, `""` inside), is free of what could
 * hide text from the reading above: a comment (`--`, `/*`), a string (`'`), a dollar quote (`$`
 * not followed by a digit), a second statement (`;`), and NUL anywhere. A second line: two nodes
 * the allowlist admits can still meet without a space (a RawNode's '' fragments between two
 * operators write `--`, a comment that a newline inside a later identifier would end).
 */
export function plain(text: string): boolean {
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0) return false
    if (c === 0x22) quoted = !quoted
    else if (quoted) continue
    else if (c === 0x27 || c === 0x3b)
      return false // ' ;
    else if (c === 0x24 && !isDigit(text.charCodeAt(i + 1)))
      return false // $ not $n
    else if ((c === 0x2d || c === 0x2f) && text.charCodeAt(i + 1) === (c === 0x2d ? 0x2d : 0x2a)) {
      return false // -- /*
    }
  }
  return !quoted
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

// keyhole's own: no other module's compile runs on it.
const compiler = new PostgresQueryCompiler()

/** The verdicts kept, by text: at most {@link VERDICTS_KEPT}, none added beyond. */
const verdicts = new Map<string, boolean>()
export const VERDICTS_KEPT = 1000

/** The verdict on `text` for `query`, uncached. */
function judgeText(text: string, query: unknown): boolean {
  try {
    const copy = copyNode(query) as CompiledQuery['query']
    if (!ROOTS.has(copy.kind)) return false
    return compiler.compileQuery(copy, { queryId: '' }).sql === text && plain(text)
  } catch {
    // Refused by the walk, or a tree the compiler cannot compile (a cycle, a missing child).
    return false
  }
}

/**
 * Whether keyhole vouches for `text`, the SQL about to be sent for `compiled` (read once by the
 * caller, so that the text judged is the text sent): true when keyhole's compiler writes exactly
 * `text` from `compiled.query`, a tree of the kinds above. Cached by text.
 * @example
 * vouchedFor(db.selectFrom('notes').select('body').compile().sql, compiled) // true
 * vouchedFor(sql`select 1`.compile(db).sql, compiled) // false
 */
export function vouchedFor(text: string, compiled: Pick<CompiledQuery, 'query'>): boolean {
  if (typeof text !== 'string') return false
  let verdict = verdicts.get(text)
  if (verdict === undefined) {
    verdict = judgeText(text, compiled.query)
    if (verdicts.size < VERDICTS_KEPT) verdicts.set(text, verdict)
  }
  return verdict
}

/** Forgets every verdict (tests: the uncached path and the cap). @internal */
export function forgetVerdicts(): void {
  verdicts.clear()
}
