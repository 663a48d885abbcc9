/**
 * keyhole/kysely vouches for a query's text when keyhole's own compiler writes exactly that text
 * from a tree of Kysely's builders alone (plugins/kysely-vouch.ts): in 'rls' mode such a query
 * runs without the session reset, as keyhole's generated statements do; anything that can carry
 * text of its own (an `sql` template, `eb.fn(name)`, a hand-made CompiledQuery) keeps the reset,
 * so what it plants in the session never reaches the next request.
 */
import t from 'tap'
import {
  CompiledQuery,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  type Generated,
  type RootOperationNode,
} from 'kysely'
import { threadListQuery } from '../../example-app/thread-list.ts'
import { kysely } from '../../plugins/kysely.ts'
import {
  forgetVerdicts,
  LONGEST_KEPT,
  plain,
  vouchedFor,
  VERDICTS_KEPT,
} from '../../plugins/kysely-vouch.ts'
import { createDatabaseRunner } from '../../src/db/database-runner.ts'
import { requestDatabases } from '../../src/http/request-database.ts'
import { createCounters } from '../../src/metrics.ts'
import { capability, createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'

interface DB {
  notes: { id: Generated<number>; group_id: string; owner: string; body: string }
  other: { id: number; note_id: number }
}

/** A Kysely that only compiles, as the example's list is built. */
const db = new Kysely<DB>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    /* c8 ignore next -- asked for only by db.introspection, never used here */
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
})

const vouched = (query: CompiledQuery) => vouchedFor(query.sql, query)
const group = '00000000-0000-4000-8000-000000000001'
const listed = db.selectFrom('notes').select(['id', 'body']).where('group_id', '=', group)

t.test("the example's list is vouched for, except with `after` (an sql template)", async (t) => {
  t.ok(vouched(threadListQuery(group, {}).compile()), 'no query string')
  t.ok(vouched(threadListQuery(group, { q: 'x', limit: '10' }).compile()), 'q and a limit')
  t.notOk(
    vouched(threadListQuery(group, { after: '00000000-0000-4000-8000-000000000002' }).compile()),
  )
})

t.test("Kysely's builders alone are vouched for", async (t) => {
  const cases: [string, CompiledQuery][] = [
    ['a select', listed.compile()],
    [
      'joins, an IN list, IS NULL, aggregates, GROUP BY, HAVING, ORDER BY, LIMIT, OFFSET',
      db
        .selectFrom('notes as n')
        .innerJoin('other as o', 'o.note_id', 'n.id')
        .leftJoin('public.other as p' as 'other as p', (join) =>
          join.onRef('p.id', '=', 'o.id').on('p.id', '>', 1),
        )
        .select((eb) => [
          'n.group_id',
          eb.fn.count<number>('n.id').distinct().as('notes'),
          eb.fn.max('n.body').as('last'),
          eb.cast<number>(eb.fn.countAll(), 'integer').as('all'),
          eb.fn.agg<string>('string_agg', ['n.body', eb.val(', ')]).as('bodies'),
        ])
        .where((eb) =>
          eb.or([
            eb('n.id', 'in', [1, 2, 3]),
            eb.and([eb('n.body', 'is', null), eb.not(eb('n.owner', 'ilike', '%a%'))]),
            eb.between('n.id', 1, 10),
          ]),
        )
        .groupBy('n.group_id')
        .having((eb) => eb.fn.countAll(), '>', 1)
        .orderBy('n.group_id', (ob) => ob.desc().nullsLast())
        .orderBy('notes', 'asc')
        .limit(sql.lit(50))
        .offset(10)
        .compile(),
    ],
    [
      'a CTE, a lateral join on true, a subquery, DISTINCT, FOR UPDATE SKIP LOCKED',
      db
        .with('mine', (db) => db.selectFrom('notes').select(['id', 'group_id']))
        .selectFrom('mine as m')
        .leftJoinLateral(
          (eb) => eb.selectFrom('other').select('note_id').whereRef('note_id', '=', 'm.id').as('x'),
          (join) => join.onTrue(),
        )
        .distinct()
        .selectAll('m')
        .where((eb) => eb.exists(eb.selectFrom('other').select(eb.lit(1).as('one'))))
        .forUpdate()
        .skipLocked()
        .compile(),
    ],
    [
      'an insert with RETURNING and ON CONFLICT, a default value',
      db
        .insertInto('notes')
        .values([
          { group_id: group, owner: 'alice', body: 'a' },
          { group_id: group, owner: 'alice', body: 'b', id: 4 },
        ])
        .onConflict((oc) => oc.column('id').doUpdateSet({ body: 'c' }).where('notes.id', '>', 0))
        .returning(['id', 'body'])
        .compile(),
    ],
    [
      'an insert of a select, ON CONFLICT DO NOTHING',
      db
        .insertInto('notes')
        .columns(['group_id', 'owner', 'body'])
        .expression(db.selectFrom('notes').select(['group_id', 'owner', 'body']))
        .onConflict((oc) => oc.constraint('notes_pkey').doNothing())
        .compile(),
    ],
    ['an insert of default values', db.insertInto('notes').defaultValues().compile()],
    [
      'an update',
      db
        .updateTable('notes')
        .set((eb) => ({ body: 'x', id: eb('id', '+', 1) }))
        .from('other')
        .whereRef('other.note_id', '=', 'notes.id')
        .returningAll()
        .compile(),
    ],
    [
      "sql.ref and sql.lit(n): '' fragments around a quoted identifier, a number",
      db
        .selectFrom('notes')
        .select([sql.ref<string>('notes.body').as('b'), sql.lit(-1.5).as('n')])
        .compile(),
    ],
    [
      'a delete',
      db.deleteFrom('notes').using('other').where('notes.id', '=', 1).returning('id').compile(),
    ],
  ]
  for (const [name, query] of cases) t.ok(vouched(query), name)
})

t.test('anything that can carry text of its own is not vouched for', async (t) => {
  const tree = listed.compile()
  const cases: [string, CompiledQuery][] = [
    [
      'an sql template',
      db
        .selectFrom('notes')
        .select(sql<string>`body`.as('b'))
        .compile(),
    ],
    ['sql.raw', db.selectFrom('notes').select(sql.raw<string>('body').as('b')).compile()],
    ["sql.lit('x')", db.selectFrom('notes').select(sql.lit('x').as('b')).compile()],
    [
      "eb.fn('set_config', …)",
      db
        .selectFrom('notes')
        .select((eb) =>
          eb.fn('set_config', [sql.lit('search_path'), sql.lit('pg_temp'), sql.lit(false)]).as('x'),
        )
        .compile(),
    ],
    [
      "eb.fn('set_config', …) of parameters",
      db
        .selectFrom('notes')
        .select((eb) =>
          eb.fn('set_config', [eb.val('search_path'), eb.val('pg_temp'), eb.val(false)]).as('x'),
        )
        .compile(),
    ],
    [
      "eb.fn.agg('whatever')",
      db
        .selectFrom('notes')
        .select((eb) => eb.fn.agg('whatever', ['body']).as('x'))
        .compile(),
    ],
    [
      'a JSON path',
      db
        .selectFrom('notes')
        .select((eb) =>
          eb
            .ref('body', '->>')
            .key('a' as never)
            .as('x'),
        )
        .compile(),
    ],
    [
      'a collation',
      db
        .selectFrom('notes')
        .select('body')
        .orderBy('body', (ob) => ob.collate('C'))
        .compile(),
    ],
    [
      'an operator given as sql.raw',
      db.selectFrom('notes').select('body').where('id', sql.raw('='), 1).compile(),
    ],
    [
      'a window',
      db
        .selectFrom('notes')
        .select((eb) => eb.fn.countAll().over().as('n'))
        .compile(),
    ],
    [
      'a union',
      db.selectFrom('notes').select('id').union(db.selectFrom('other').select('id')).compile(),
    ],
    [
      'a double negation (-- is a comment)',
      db
        .selectFrom('notes')
        .select((eb) => eb.neg(eb.neg(eb.ref('id'))).as('x'))
        .compile(),
    ],
    [
      'a cast to a type given as sql',
      db
        .selectFrom('notes')
        .select((eb) => eb.cast(eb.ref('id'), sql`text`).as('x'))
        .compile(),
    ],
    ['CompiledQuery.raw', CompiledQuery.raw('select 1')],
    [
      'a hand-made query: its text is not its tree',
      { ...tree, sql: 'SET search_path = pg_temp', parameters: [] },
    ],
    ['a text one character off its tree', { ...tree, sql: tree.sql.replace('$1', '$2') }],
  ]
  for (const [name, query] of cases) t.notOk(vouched(query), name)
  const modified = db
    .selectFrom('notes')
    .select('body')
    .modifyFront(sql`x`)
  t.notOk(vouched(modified.compile()), 'a front modifier as sql')
  const explain = new PostgresQueryCompiler().compileQuery(
    { ...(tree.query as object), explain: { kind: 'ExplainNode' } } as RootOperationNode,
    tree.queryId,
  )
  t.notOk(vouched(explain), 'EXPLAIN')
  t.notOk(vouchedFor(42 as never, tree), 'a text that is not a string')
})

/** `query`'s tree with `change` made at the first node of `kind`. */
function edited(query: CompiledQuery, kind: string, change: (node: object) => object): object {
  let done = false
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk)
    if (typeof value !== 'object' || value === null || !('kind' in value)) return value
    if (!done && value.kind === kind) {
      done = true
      return change(value)
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]))
  }
  return walk(query.query) as object
}

/** Compiled as keyhole's compiler writes it: the text matches, only the walk can refuse. */
function handMade(tree: object): CompiledQuery {
  try {
    return new PostgresQueryCompiler().compileQuery(tree as RootOperationNode, { queryId: 'x' })
  } catch {
    return { sql: 'select 1', query: tree, parameters: [], queryId: { queryId: 'x' } } as never
  }
}

t.test('hand-made trees the walk refuses', async (t) => {
  const base = db
    .selectFrom('notes')
    .select('body')
    .where('id', 'in', [1, 2])
    .where('id', '=', sql.lit(1))
    .orderBy('id', 'desc')
    .compile()
  t.ok(vouched(base), 'the tree they start from')
  const newline = { kind: 'IdentifierNode', name: 'x\nSET search_path = pg_temp' }
  const op = (operator: string) => ({ kind: 'OperatorNode', operator })
  const table = (name: string) => ({
    kind: 'TableNode',
    table: { kind: 'SchemableIdentifierNode', identifier: { kind: 'IdentifierNode', name } },
  })
  const callArguments = {
    kind: 'ValueListNode',
    values: [1, 2, 3].map((value) => ({ kind: 'ValueNode', value })),
  }
  const raw = (parameters: object[]) => ({
    kind: 'RawNode',
    sqlFragments: new Array(parameters.length + 1).fill(''),
    parameters,
  })
  let reads = 0
  const cases: [string, object][] = [
    [
      'an operator outside the list',
      edited(base, 'OperatorNode', (node) => ({ ...node, operator: '= 1; SET x = 1 --' })),
    ],
    [
      "two '-' written side by side: a comment that a newline in an identifier ends",
      edited(base, 'ReferenceNode', () => ({
        kind: 'AliasNode',
        node: raw([op('-'), op('-'), { kind: 'ColumnNode', column: newline }]),
        alias: { kind: 'IdentifierNode', name: 'x' },
      })),
    ],
    [
      "'/' and '*' side by side",
      edited(base, 'ReferenceNode', () => raw([op('/'), { kind: 'SelectAllNode' }])),
    ],
    [
      'an operator that answers the walk one value and the compiler another',
      edited(base, 'OperatorNode', () => ({
        kind: 'OperatorNode',
        // Read by handMade's compile, by the walk, then by a compile of the original tree: the
        // walk alone sees '='. No quote, no semicolon: only the copy stops it.
        get operator() {
          return reads++ === 1 ? '=' : '= 0 or setseed(0) is null or 1 ='
        },
      })),
    ],
    // Admitted kinds in the wrong place: a name followed by `(` is a function call.
    [
      'a table as a unary operator: "set_config" ($1, $2, $3)',
      edited(base, 'ReferenceNode', () => ({
        kind: 'UnaryOperationNode',
        operator: table('set_config'),
        operand: callArguments,
      })),
    ],
    [
      'a table as a binary operator: not "set_config" ($1, $2, $3)',
      edited(base, 'ReferenceNode', () => ({
        kind: 'BinaryOperationNode',
        leftOperand: { kind: 'RawNode', sqlFragments: ['true'], parameters: [] },
        operator: table('set_config'),
        rightOperand: callArguments,
      })),
    ],
    [
      'a unary operator outside the four',
      edited(base, 'ReferenceNode', () => ({
        kind: 'UnaryOperationNode',
        operator: op('is'),
        operand: callArguments,
      })),
    ],
    [
      'a join\'s on that is not an OnNode: cross join "set_config" ($1, $2, $3)',
      edited(base, 'SelectQueryNode', (query) => ({
        ...query,
        joins: [
          {
            kind: 'JoinNode',
            joinType: 'CrossJoin',
            table: table('set_config'),
            on: callArguments,
          },
        ],
      })),
    ],
    [
      'a sort direction that is not asc or desc: order by "set_config" ($1, $2, $3)',
      edited(base, 'OrderByItemNode', () => ({
        kind: 'OrderByItemNode',
        orderBy: table('set_config'),
        direction: { kind: 'RawNode', sqlFragments: ['', ''], parameters: [callArguments] },
      })),
    ],
    [
      'a raw word as a sort direction',
      edited(base, 'OrderByItemNode', (node) => ({
        ...node,
        direction: { kind: 'RawNode', sqlFragments: ['true'], parameters: [] },
      })),
    ],
    [
      'a RawNode\'s two children side by side: "set_config"($1, $2, $3)',
      edited(base, 'ReferenceNode', () => raw([table('set_config'), callArguments])),
    ],
    [
      'a RawNode of one child without its empty fragments',
      edited(base, 'ReferenceNode', () => ({
        kind: 'RawNode',
        sqlFragments: ['true', ''],
        parameters: [table('x')],
      })),
    ],
    ['a RawNode without fragments', edited(base, 'ReferenceNode', () => ({ kind: 'RawNode' }))],
    ['an unknown kind', edited(base, 'ColumnNode', () => ({ kind: 'MysteryNode' }))],
    ['a node without a kind', edited(base, 'ColumnNode', () => ({ column: 'x' }))],
    ['a node that is not an object', edited(base, 'ColumnNode', () => 'body' as never)],
    [
      'an identifier that is not a string',
      edited(base, 'IdentifierNode', () => ({ kind: 'IdentifierNode', name: ['body'] })),
    ],
    ['an unknown field', edited(base, 'ColumnNode', (node) => ({ ...node, text: "'; SET x = 1" }))],
    [
      'a field named as a prototype member',
      edited(base, 'ColumnNode', (node) => ({ ...node, constructor: 1 })),
    ],
    [
      'an immediate string',
      edited(base, 'ValueNode', () => ({ kind: 'ValueNode', value: "x'", immediate: true })),
    ],
    [
      'an immediate NaN',
      edited(base, 'ValueNode', () => ({ kind: 'ValueNode', value: NaN, immediate: true })),
    ],
    [
      'an immediate Date',
      edited(base, 'ValueNode', () => ({ kind: 'ValueNode', value: new Date(0), immediate: true })),
    ],
    [
      'an immediate that is not a boolean',
      edited(base, 'ValueNode', () => ({ kind: 'ValueNode', value: 1, immediate: 'yes' })),
    ],
    [
      'a value list that is not an array',
      edited(base, 'PrimitiveValueListNode', () => ({ kind: 'PrimitiveValueListNode', values: 3 })),
    ],
    [
      'more values than PostgreSQL takes',
      edited(base, 'PrimitiveValueListNode', () => ({
        kind: 'PrimitiveValueListNode',
        values: new Array(65_536).fill(0),
      })),
    ],
    [
      'raw fragments that are not an array',
      edited(base, 'RawNode', (node) => ({ ...node, sqlFragments: 'desc' })),
    ],
    [
      'a raw fragment outside the list',
      edited(base, 'RawNode', (node) => ({ ...node, sqlFragments: ['desc; SET x = 1'] })),
    ],
    [
      'children that are not an array',
      edited(base, 'FromNode', () => ({ kind: 'FromNode', froms: {} })),
    ],
    [
      'a data type outside the pattern',
      edited(base, 'ReferenceNode', () => ({
        kind: 'CastNode',
        expression: { kind: 'ValueNode', value: 1, immediate: true },
        dataType: { kind: 'DataTypeNode', dataType: 'int), setseed(1' },
      })),
    ],
    [
      'an insert that writes replace',
      {
        kind: 'InsertQueryNode',
        into: (base.query as unknown as { from: { froms: [object] } }).from.froms[0],
        replace: true,
      },
    ],
    ['a root that is not a query', { kind: 'WhereNode', where: { kind: 'SelectAllNode' } }],
  ]
  for (const [name, tree] of cases) {
    // Judged afresh: a text already proven (the base's) stays proven whatever tree comes with it.
    forgetVerdicts()
    t.notOk(vouched(handMade(tree)), name)
  }
  const cycle: { kind: string; node?: unknown } = { kind: 'ParensNode' }
  cycle.node = cycle
  forgetVerdicts()
  t.notOk(vouched(handMade(edited(base, 'ReferenceNode', () => cycle))), 'a cycle')
  forgetVerdicts()
  const insert = db.insertInto('notes').values({ group_id: group, owner: 'a', body: 'b' }).compile()
  t.ok(
    vouched(handMade(edited(insert, 'InsertQueryNode', (node) => ({ ...node, replace: false })))),
    "an insert's replace: false",
  )
  t.ok(
    vouched(handMade(edited(base, 'ValueNode', (node) => ({ ...node, extra: undefined })))),
    'an undefined field is no field',
  )
  t.ok(
    vouched(
      handMade(
        edited(base, 'ReferenceNode', () => ({
          kind: 'CastNode',
          expression: { kind: 'ValueNode', value: null, immediate: true },
          dataType: { kind: 'DataTypeNode', dataType: 'numeric(10, 2)[]' },
        })),
      ),
    ),
    'a cast of null to numeric(10, 2)[]',
  )
})

t.test(
  'the text scan: nothing outside quoted identifiers but what the compiler writes',
  async (t) => {
    const cases: [string, boolean][] = [
      ['select "a"."b" from "t" where "c" = $1 and "d" in ($2, $3)', true],
      [`select "it's; -- /* $$ ""quoted"" " from "t"`, true],
      ['select 1 -- comment', false],
      ['select 1 /* comment */', false],
      ["select 'string'", false],
      ['select 1; select 2', false],
      ['select $$dollar$$', false],
      ['select $', false],
      ['select "\0"', false],
    ]
    for (const [text, ok] of cases) t.equal(plain(text), ok, JSON.stringify(text))
  },
)

t.test('a text proven once stays proven; at most VERDICTS_KEPT are kept', async (t) => {
  forgetVerdicts()
  const texts = Array.from({ length: VERDICTS_KEPT + 1 }, (_, i) =>
    listed.limit(sql.lit(i)).compile(),
  )
  t.ok(
    texts.every((query) => vouched(query)),
    'each vouched for',
  )
  const wrong = { kind: 'RawNode', sqlFragments: ['x'], parameters: [] }
  const first = texts[0] as CompiledQuery
  const last = texts[VERDICTS_KEPT] as CompiledQuery
  t.ok(vouchedFor(first.sql, { query: wrong as never }), 'the first text, kept: its tree not read')
  t.notOk(vouchedFor(last.sql, { query: wrong as never }), 'the last, not kept: judged again')
  forgetVerdicts()
})

t.test('a text longer than LONGEST_KEPT is judged on every call, never kept', async (t) => {
  forgetVerdicts()
  const ids = Array.from({ length: 2000 }, (_, i) => i)
  const long = listed.where('id', 'in', ids).compile()
  t.ok(long.sql.length > LONGEST_KEPT, `the text is ${long.sql.length} characters`)
  t.ok(vouched(long), 'vouched for')
  const wrong = { kind: 'RawNode', sqlFragments: ['x'], parameters: [] }
  t.notOk(vouchedFor(long.sql, { query: wrong as never }), 'not kept: its tree read again')
  forgetVerdicts()
})

// ---- On the database: 'rls' mode, the reset counted, and what it protects.

const k = await createKeyholeDatabase(t)
const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
const counters = createCounters()
const rls = requestDatabases(
  createDatabaseRunner(
    {
      // One connection: each request runs on the connection the previous one left.
      pool: k.runtimePool(1),
      policies: notesPolicies,
      signingKey: k.signingKey,
      mode: 'rls',
      prepared: true,
    },
    counters,
  ),
  'test',
)

/** Runs `work` as one request of alice (committed), and answers how many resets it cost. */
async function resetsOf(
  work: (
    db: ReturnType<typeof kysely<DB>>,
    handle: ReturnType<typeof rls.handle>,
  ) => Promise<unknown>,
  transaction: 'request' | 'statement' = 'request',
): Promise<number> {
  const before = counters.sessionsReset
  const key = {}
  const handle = rls.handle(key, alice, transaction)
  await work(kysely<DB>(handle), handle)
  await rls.end(key, true)
  return counters.sessionsReset - before
}

const searchPath = async () => {
  let path: unknown
  await resetsOf(async (_, handle) => {
    path = (await handle.query('SHOW search_path')).rows[0]
  })
  return path
}

t.test(
  "'rls' mode: a vouched query runs without the reset, an untrusted one with it",
  async (t) => {
    for (const transaction of ['request', 'statement'] as const) {
      const rows: unknown[] = []
      const vouchedRun = await resetsOf(async (db) => {
        rows.push(...(await db.selectFrom('notes').select('body').execute()))
        rows.push(...(await db.executeQuery(listed.compile())).rows)
      }, transaction)
      t.equal(vouchedRun, 0, `${transaction}: no reset`)
      t.same(rows, [{ body: 'a' }], 'the policies still condition it')
      const untrusted = await resetsOf(async (db) => {
        await db
          .selectFrom('notes')
          .select(sql<string>`body`.as('b'))
          .execute()
      }, transaction)
      t.equal(untrusted, 1, `${transaction}: an sql template: one reset`)
    }
  },
)

t.test(
  "'rls' mode: a Kysely transaction (keyhole's savepoints) of vouched queries runs without the reset",
  async (t) => {
    const rows: unknown[] = []
    const vouchedRun = await resetsOf(async (db) => {
      await db.transaction().execute(async (trx) => {
        rows.push(...(await trx.selectFrom('notes').select('body').execute()))
      })
      // A rolled-back one too: ROLLBACK TO and RELEASE are keyhole's.
      await db
        .transaction()
        .execute(async (trx) => {
          await trx.selectFrom('notes').select('body').execute()
          throw new Error('roll back')
        })
        .catch(() => {})
    })
    t.equal(vouchedRun, 0, 'savepoints and vouched queries: no reset')
    t.same(rows, [{ body: 'a' }], 'the policies still condition it')
    const untrusted = await resetsOf(async (db) => {
      await db.transaction().execute(async (trx) => {
        await trx
          .selectFrom('notes')
          .select(sql<string>`body`.as('b'))
          .execute()
      })
    })
    t.equal(untrusted, 1, 'an sql template inside: one reset')
  },
)

t.test(
  'an attack: what a query plants in the session never reaches the next request',
  async (t) => {
    const clean = await searchPath()
    t.notSame(clean, { search_path: 'pg_temp' })
    const plant: [string, (db: ReturnType<typeof kysely<DB>>) => Promise<unknown>][] = [
      [
        "eb.fn('set_config', …) of parameters: only the refused FunctionNode stops it",
        (db) =>
          db
            .selectFrom('notes')
            .select((eb) =>
              eb
                .fn('set_config', [eb.val('search_path'), eb.val('pg_temp'), eb.val(false)])
                .as('x'),
            )
            .execute(),
      ],
      [
        'a hand-made CompiledQuery: a vouched tree, its own text',
        (db) =>
          db.executeQuery({
            ...listed.compile(),
            // No quote, no comment: only the comparison with the tree's text refuses it.
            sql: 'select set_config($1, $2, false)',
            parameters: ['search_path', 'pg_temp'],
          }),
      ],
    ]
    plant.push([
      'a hand-made tree of admitted kinds in the wrong places: "set_config" ($1, $2, $3)',
      (db) => {
        const tree = edited(db.selectFrom('notes').select('id').compile(), 'ReferenceNode', () => ({
          kind: 'UnaryOperationNode',
          operator: {
            kind: 'TableNode',
            table: {
              kind: 'SchemableIdentifierNode',
              identifier: { kind: 'IdentifierNode', name: 'set_config' },
            },
          },
          operand: {
            kind: 'ValueListNode',
            values: ['search_path', 'pg_temp', false].map((value) => ({
              kind: 'ValueNode',
              value,
            })),
          },
        }))
        return db.executeQuery(handMade(tree))
      },
    ])
    for (const [name, attack] of plant) {
      t.equal(await resetsOf(attack), 1, `${name}: reset`)
      t.same(await searchPath(), clean, `${name}: the next request has the default search_path`)
    }
  },
)
