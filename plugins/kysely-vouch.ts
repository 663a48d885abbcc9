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
 * unknown kind, a kind where its position does not admit it, an unknown field, a string outside
 * its list refuses the whole tree); the copy is compiled with keyhole's own compiler; the
 * statement is vouched for only when that text equals the text to be sent exactly, and a scan of
 * it finds no comment, string, dollar quote, semicolon or NUL outside quoted identifiers. Reading each field once, into the copy, is what
 * makes a getter or a Proxy that answers one value to the check and another to the compiler
 * useless. A verdict is kept per text: a text proven once is safe forever.
 */
import { PostgresQueryCompiler, type CompiledQuery } from 'kysely'

/**
 * How a field of an admitted kind is copied: a scalar the compiler writes or tests, checked; a
 * child node of the kinds the position admits, or a list of them. Throws when refused.
 */
type FieldRule = (value: unknown) => unknown

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

/** A child node of one of `kinds`. */
function one(...kinds: string[]): FieldRule {
  const allowed = new Set(kinds)
  return (value) => copyNode(value, allowed)
}

/** A list of child nodes, each of one of `kinds`. */
function many(...kinds: string[]): FieldRule {
  const allowed = new Set(kinds)
  return (value) =>
    Array.isArray(value) ? Array.from(value as unknown[], (n) => copyNode(n, allowed)) : refuse()
}

// prettier-ignore
/**
 * The operators `visitOperator` appends as they are: Kysely's OPERATORS list (0.28), copied here
 * because Kysely's exported array is mutable. A unary operation takes only its four.
 */
const OPERATORS = new Set([
  '=', '==', '!=', '<>', '>', '>=', '<', '<=', 'in', 'not in', 'is', 'is not', 'like', 'not like',
  'match', 'ilike', 'not ilike', '@>', '<@', '^@', '&&', '?', '?&', '?|', '!<', '!>', '<=>', '!~',
  '~', '~*', '!~*', '@@', '@@@', '!!', '<->', 'regexp', 'is distinct from',
  'is not distinct from', '+', '-', '*', '/', '%', '^', '&', '|', '#', '<<', '>>', '||', '->',
  '->>', 'between', 'between symmetric',
])
const UNARY_OPERATORS = new Set(['not', '-', 'exists', 'not exists'])

// prettier-ignore
/** `visitAggregateFunction` appends `func` as it is: only these built-in aggregates. */
const AGGREGATES = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'json_agg', 'jsonb_agg', 'string_agg',
  'bool_and', 'bool_or', 'every',
])

// prettier-ignore
/** `visitJoin` writes JOIN_TYPE_SQL[joinType]: PostgreSQL's joins (not 'Using', nor APPLY). */
const JOIN_TYPES = new Set([
  'InnerJoin', 'LeftJoin', 'RightJoin', 'FullJoin', 'CrossJoin', 'LateralInnerJoin',
  'LateralLeftJoin', 'LateralCrossJoin',
])

// prettier-ignore
/**
 * `visitSelectModifier` writes SELECT_MODIFIER_SQL[modifier]: the row locks (transaction-scoped,
 * released with the request's transaction), their NOWAIT / SKIP LOCKED, and DISTINCT.
 */
const SELECT_MODIFIERS = new Set([
  'ForUpdate', 'ForNoKeyUpdate', 'ForShare', 'ForKeyShare', 'NoWait', 'SkipLocked', 'Distinct',
])

/**
 * A RawNode's fragments, which `visitRaw` appends as they are: Kysely's own builders write one
 * keyword alone (`join.onTrue()`'s 'true', `orderBy(x, 'asc' | 'desc')`), or '' on each side of
 * one child (`sql.lit(n)`, `sql.ref(name)`). Never two children side by side, which '' fragments
 * would write with nothing between them. Any `sql` template, `sql.raw` or `sql.lit('text')`
 * carries text of its own and is refused.
 */
const RAW_WORDS = new Set(['true', 'false', 'asc', 'desc'])

/**
 * `visitDataType` appends `dataType` as it is. Kysely's builders accept only its
 * SIMPLE_COLUMN_DATA_TYPES and COLUMN_DATA_TYPE_REGEX (one or two words, `(n)` or `(n, m)`); this
 * admits words of lower-case letters and digits, a modifier of digits, and `[]`, and only as a
 * cast's type, where `setseed(1)` would be read as a type with a modifier, never as a call.
 */
const DATA_TYPE = /^[a-z][a-z0-9]*(?: [a-z][a-z0-9]*){0,3}(?:\(\d{1,5}(?:, \d{1,5})?\))?(?:\[\])?$/

/** A parameter (`$n`): its value never reaches the text, so the copy holds none. */
const parameter = () => undefined

/** PostgreSQL's limit on a statement's parameters. */
const MAX_PARAMETERS = 65_535

/**
 * The kinds an expression position admits (a selection, an operand, a value, a FROM item, an
 * aggregate's argument …). Any of them may end with a quoted name, and a name followed by `(`
 * (spaces between or not) is a function call: so no position below puts an expression right
 * before another child. Wherever one child follows another, a keyword, an operator, `,`, `.` or
 * ` as ` stands between them (a join's `on` is an OnNode, an operation's operator an
 * OperatorNode, a sort's direction a keyword, a RawNode has one child at most), or the `(` opens
 * a column list (`insert into "t" (…)`, `with "t"("a") as`). A kind-only allowlist is not enough:
 * a UnaryOperationNode whose operator is a TableNode writes `"set_config" ($1, $2, $3)`.
 */
const EXPRESSION = [
  'ReferenceNode', 'ColumnNode', 'TableNode', 'AliasNode', 'SelectAllNode', 'ValueNode',
  'ValueListNode', 'PrimitiveValueListNode', 'BinaryOperationNode', 'UnaryOperationNode',
  'AndNode', 'OrNode', 'ParensNode', 'CastNode', 'AggregateFunctionNode', 'SelectQueryNode',
  'RawNode', 'SelectionNode', 'DefaultInsertValueNode',
] // prettier-ignore
const expression = one(...EXPRESSION)
const expressions = many(...EXPRESSION)
const QUERIES = ['SelectQueryNode', 'InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode']

/**
 * The allowlist: each kind admitted, each of its fields with the kinds its position admits, and
 * what the compiler (kysely 0.28's default-query-compiler.js, postgres-query-compiler.js) writes
 * of it: fixed keywords, quoted identifiers, placeholders, its children, and the scalars checked.
 */
const KINDS: ReadonlyMap<string, Readonly<Record<string, FieldRule>>> = new Map<
  string,
  Record<string, FieldRule>
>([
  // The roots, also subqueries and CTEs. `explain`, `top`, `fetch`, `setOperations`, `output`,
  // `orAction`, `onDuplicateKey`, an update's or delete's `orderBy`/`limit` and an insert's,
  // update's or delete's `endModifiers` are left out: each is refused where present. Each writes
  // 'select' / 'insert into' / 'update' / 'delete', then each clause (which starts with its own
  // keyword: 'from', 'where', 'returning', …) after a space.
  [
    'SelectQueryNode',
    {
      with: one('WithNode'),
      distinctOn: expressions,
      frontModifiers: many('SelectModifierNode'),
      selections: many('SelectionNode'),
      from: one('FromNode'),
      joins: many('JoinNode'),
      where: one('WhereNode'),
      groupBy: one('GroupByNode'),
      having: one('HavingNode'),
      orderBy: one('OrderByNode'),
      limit: one('LimitNode'),
      offset: one('OffsetNode'),
      endModifiers: many('SelectModifierNode'),
    },
  ],
  [
    'InsertQueryNode',
    {
      with: one('WithNode'),
      into: one('TableNode', 'AliasNode'),
      columns: many('ColumnNode'),
      values: one('ValuesNode', 'SelectQueryNode'),
      defaultValues: flag,
      onConflict: one('OnConflictNode'),
      returning: one('ReturningNode'),
      replace: unset,
      ignore: unset,
    },
  ],
  [
    'UpdateQueryNode',
    {
      with: one('WithNode'),
      table: one('TableNode', 'AliasNode', 'ListNode'),
      updates: many('ColumnUpdateNode'),
      from: one('FromNode'),
      joins: many('JoinNode'),
      where: one('WhereNode'),
      returning: one('ReturningNode'),
    },
  ],
  [
    'DeleteQueryNode',
    {
      with: one('WithNode'),
      from: one('FromNode'),
      using: one('UsingNode'),
      joins: many('JoinNode'),
      where: one('WhereNode'),
      returning: one('ReturningNode'),
    },
  ],
  // `"` + name + `"`, every `"` of the name doubled (PostgresQueryCompiler.sanitizeIdentifier):
  // the name cannot end the quoted identifier, whatever it holds.
  ['IdentifierNode', { name: (value) => (typeof value === 'string' ? value : refuse()) }],
  // Identifiers, with '.' between them.
  ['TableNode', { table: one('SchemableIdentifierNode') }],
  ['SchemableIdentifierNode', { schema: one('IdentifierNode'), identifier: one('IdentifierNode') }],
  ['ColumnNode', { column: one('IdentifierNode') }],
  ['ReferenceNode', { table: one('TableNode'), column: one('ColumnNode', 'SelectAllNode') }],
  ['AliasNode', { node: expression, alias: one('IdentifierNode') }], // ' as '
  ['SelectionNode', { selection: expression }],
  ['SelectAllNode', {}], // '*'
  ['ListNode', { items: expressions }], // an update of several tables: ', '
  ['FromNode', { froms: expressions }], // 'from ', ', '
  ['UsingNode', { tables: expressions }], // 'using ', ', '
  ['WhereNode', { where: expression }], // 'where '
  ['HavingNode', { having: expression }], // 'having '
  ['JoinNode', { joinType: oneOf(JOIN_TYPES), table: expression, on: one('OnNode') }],
  ['OnNode', { on: expression }], // 'on '
  ['AndNode', { left: expression, right: expression }], // ' and '
  ['OrNode', { left: expression, right: expression }], // ' or '
  ['ParensNode', { node: expression }], // '(' ')'
  [
    'BinaryOperationNode',
    {
      leftOperand: expression,
      operator: (value) => copyOperator(value, OPERATORS),
      rightOperand: expression,
    },
  ],
  [
    'UnaryOperationNode',
    { operator: (value) => copyOperator(value, UNARY_OPERATORS), operand: expression },
  ],
  // The operator as it is: only where an operation's operator stands, checked there against the
  // binary or the unary list.
  ['OperatorNode', { operator: (value) => value }],
  // A parameter, or (immediate) value.toString() of a finite number, a boolean, or 'null':
  // never a string (appendStringLiteral) nor a Date or bigint. Checked in copyNode.
  ['ValueNode', { value: (value) => value, immediate: flag }],
  ['ValueListNode', { values: expressions }], // '(' ', ' ')'
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
  // 'cast(' expression ' as ' type ')'.
  ['CastNode', { expression, dataType: one('DataTypeNode') }],
  [
    'DataTypeNode',
    {
      dataType: (value) => (typeof value === 'string' && DATA_TYPE.test(value) ? value : refuse()),
    },
  ],
  // func '(' ['distinct '] arguments [' ' order by] ')' [' within group (' ')'] [' filter(' ')'];
  // no `over` (a window).
  [
    'AggregateFunctionNode',
    {
      func: oneOf(AGGREGATES),
      distinct: flag,
      aggregated: expressions,
      orderBy: one('OrderByNode'),
      withinGroup: one('OrderByNode'),
      filter: one('WhereNode'),
    },
  ],
  ['OrderByNode', { items: many('OrderByItemNode') }], // 'order by ', ', '
  // expression, ' ' and 'asc' or 'desc', ' nulls ' and 'first' or 'last'; no `collation`.
  [
    'OrderByItemNode',
    {
      orderBy: expression,
      direction: copyDirection,
      nulls: oneOf(new Set(['first', 'last'])),
    },
  ],
  ['GroupByNode', { items: many('GroupByItemNode') }], // 'group by ', ', '
  ['GroupByItemNode', { groupBy: expression }],
  ['LimitNode', { limit: expression }], // 'limit '
  ['OffsetNode', { offset: expression }], // 'offset '
  ['ValuesNode', { values: many('ValueListNode', 'PrimitiveValueListNode') }], // 'values ', ', '
  ['DefaultInsertValueNode', {}], // 'default'
  ['ColumnUpdateNode', { column: one('ColumnNode'), value: expression }], // ' = '
  ['ReturningNode', { selections: many('SelectionNode') }], // 'returning ', ', '
  // 'on conflict', then ' (' columns ')' or ' on constraint ' name or ' (' expression ')', then
  // its where, then ' do nothing' or ' do update set ' updates and their where.
  [
    'OnConflictNode',
    {
      columns: many('ColumnNode'),
      constraint: one('IdentifierNode'),
      indexExpression: expression,
      indexWhere: one('WhereNode'),
      doNothing: flag,
      updates: many('ColumnUpdateNode'),
      updateWhere: one('WhereNode'),
    },
  ],
  // SELECT_MODIFIER_SQL[modifier], then ' of ' and tables; no `rawModifier`.
  ['SelectModifierNode', { modifier: oneOf(SELECT_MODIFIERS), of: many('TableNode') }],
  // 'with ' ['recursive '], then name ' as ' ['not '] ['materialized '] '(' query ')', name
  // being table '(' columns ')'.
  ['WithNode', { recursive: flag, expressions: many('CommonTableExpressionNode') }],
  [
    'CommonTableExpressionNode',
    {
      name: one('CommonTableExpressionNameNode'),
      materialized: flag,
      expression: one(...QUERIES),
    },
  ],
  ['CommonTableExpressionNameNode', { table: one('TableNode'), columns: many('ColumnNode') }],
  // Each fragment, then the child after it: checked in copyNode.
  [
    'RawNode',
    {
      sqlFragments: (value) =>
        Array.isArray(value) ? Array.from(value as unknown[], (f) => f) : refuse(),
      parameters: expressions,
    },
  ],
])

const ROOTS = new Set(QUERIES)

const operatorNode = one('OperatorNode')
const rawNode = one('RawNode')

/** An operation's OperatorNode, its operator one of `operators`. */
function copyOperator(value: unknown, operators: ReadonlySet<string>): object {
  const copy = operatorNode(value) as { operator: unknown }
  return operators.has(copy.operator as string) ? copy : refuse()
}

/** A sort's direction: the RawNode 'asc' or 'desc' alone. */
function copyDirection(value: unknown): object {
  const copy = rawNode(value) as { sqlFragments: unknown[] }
  return DIRECTIONS.has(copy.sqlFragments[0] as string) ? copy : refuse()
}
const DIRECTIONS = new Set(['asc', 'desc'])

/**
 * A copy of `node`, one of the `allowed` kinds, holding only what {@link KINDS} admits, each
 * field read once.
 * @throws whenever anything is refused.
 */
function copyNode(node: unknown, allowed: ReadonlySet<string>): object {
  if (typeof node !== 'object' || node === null) refuse()
  const kind: unknown = (node as { kind?: unknown }).kind
  const rules = typeof kind === 'string' && allowed.has(kind) ? KINDS.get(kind) : undefined
  if (rules === undefined) refuse()
  const copy: Record<string, unknown> = { kind }
  for (const key of Object.keys(node)) {
    if (key === 'kind') continue
    const value: unknown = (node as Record<string, unknown>)[key]
    if (value === undefined) continue
    const rule = (Object.hasOwn(rules, key) ? rules[key] : undefined) ?? refuse()
    copy[key] = rule(value)
  }
  if (kind === 'ValueNode' && copy.immediate === true && !literal(copy.value)) refuse()
  if (kind === 'RawNode' && !rawShape(copy)) refuse()
  return copy
}

/** One keyword alone, or '' on each side of one child (see {@link RAW_WORDS}). */
function rawShape(raw: { sqlFragments?: unknown; parameters?: unknown }): boolean {
  const fragments = (raw.sqlFragments ?? []) as unknown[]
  const children = (raw.parameters ?? []) as unknown[]
  return children.length === 0
    ? fragments.length === 1 && RAW_WORDS.has(fragments[0] as string)
    : children.length === 1 && fragments.length === 2 && fragments[0] === '' && fragments[1] === ''
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
 * not followed by a digit), a second statement (`;`), and NUL anywhere. A second line: admitted
 * nodes can still meet without a space (`eb.neg(eb.neg(x))` writes `--`, a comment that a
 * newline inside a later quoted identifier would end).
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

/**
 * The verdicts kept, by text: at most {@link VERDICTS_KEPT}, none added beyond, and none of a
 * text longer than {@link LONGEST_KEPT} characters (an `IN` list of thousands of placeholders is
 * judged on each call instead: a thousand such texts would hold hundreds of megabytes).
 */
const verdicts = new Map<string, boolean>()
export const VERDICTS_KEPT = 1000
export const LONGEST_KEPT = 8192

/** The verdict on `text` for `query`, uncached. */
function judgeText(text: string, query: unknown): boolean {
  try {
    const copy = copyNode(query, ROOTS) as CompiledQuery['query']
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
    if (verdicts.size < VERDICTS_KEPT && text.length <= LONGEST_KEPT) verdicts.set(text, verdict)
  }
  return verdict
}

/** Forgets every verdict (tests: the uncached path and the cap). @internal */
export function forgetVerdicts(): void {
  verdicts.clear()
}
