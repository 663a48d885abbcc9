/**
 * The one-round-trip pipeline on a plain pg client: results per statement, one implicit
 * transaction, and the protocol's corners (a failing type parser, COPY, an empty statement).
 */
import pg from 'pg'
import t from 'tap'
import { Pipeline } from '../../src/db/pipeline.ts'
import { createTestDatabase } from '../helpers/database.ts'

const db = await createTestDatabase(t)
const client = new pg.Client({ connectionString: db.url })
await client.connect()
t.teardown(() => client.end())

async function send(p: Pipeline) {
  client.query(p as never)
  return (await p.done) as {
    command: string | null
    rowCount: number | null
    fields: unknown[]
    rows: Record<string, unknown>[]
  }[]
}

t.test('statements before one Sync share one implicit transaction', async (t) => {
  const results = await send(
    new Pipeline([
      { text: `SELECT set_config('x.y', $1, true) AS set`, values: ['1'] },
      { text: `SELECT current_setting('x.y') AS seen, txid_current() AS a` },
      { text: 'SELECT txid_current() AS b' },
    ]),
  )
  t.same(
    results.map((r) => r.command),
    ['SELECT', 'SELECT', 'SELECT'],
  )
  t.equal(results[1]!.rows[0]!.seen as string, '1')
  t.equal(results[1]!.rows[0]!.a, results[2]!.rows[0]!.b, 'one transaction')
  t.same(
    (await client.query(`SELECT current_setting('x.y', true) AS s`)).rows,
    [{ s: '' }],
    'gone after it',
  )
})

t.test('a statement whose rows are unread: no Describe, its rows dropped unparsed', async (t) => {
  const results = await send(
    new Pipeline([
      { text: 'SELECT g AS n FROM generate_series(1, 3) AS g', rowsUnread: true },
      { text: 'SELECT 2 AS two' },
    ]),
  )
  t.same(
    results.map((r) => [r.command, r.rowCount, r.fields.length, r.rows]),
    [
      ['SELECT', 3, 0, []],
      ['SELECT', 1, 1, [{ two: 2 }]],
    ],
    'no RowDescription came for it: the command and row count only',
  )
})

t.test('named statements are parsed once and recorded as pg records them', async (t) => {
  const named = { name: 'pipeline_named', text: 'SELECT $1::int + 1 AS n' }
  for (const v of [1, 2]) {
    const [r] = await send(new Pipeline([{ ...named, values: [v] }]))
    t.same(r!.rows, [{ n: v + 1 }])
  }
  t.same((await client.query({ ...named, values: [10] })).rows, [{ n: 11 }], 'pg reuses it')
})

t.test(
  'errors: the first error rejects, the rest is skipped, the transaction rolls back',
  async (t) => {
    await client.query('CREATE TABLE t (id int)')
    const p = new Pipeline([
      { text: 'INSERT INTO t VALUES (1)' },
      { text: 'SELECT 1/0' },
      { text: 'INSERT INTO t VALUES (2)' },
    ])
    await t.rejects(send(p), { code: '22012' })
    t.equal(p.completed.length, 1)
    t.same((await client.query('SELECT count(*)::int AS n FROM t')).rows, [{ n: 0 }])
  },
)

t.test('a failing type parser is reported after the server is ready', async (t) => {
  const types = {
    getTypeParser: () => () => {
      throw new Error('parser failed')
    },
  }
  const p = new Pipeline([{ text: `SELECT 'x' AS a` }])
  // pg's Result reads the global type parsers: swap in a throwing one for this statement.
  const parsers = pg.types as { getTypeParser: unknown }
  const originalParse = parsers.getTypeParser
  parsers.getTypeParser = types.getTypeParser
  try {
    await t.rejects(send(p), { message: 'parser failed' })
  } finally {
    parsers.getTypeParser = originalParse
  }
  t.same((await client.query('SELECT 1 AS ok')).rows, [{ ok: 1 }], 'the client still works')
})

t.test('COPY FROM STDIN is refused, an empty statement counts', async (t) => {
  await t.rejects(send(new Pipeline([{ text: 'COPY t FROM STDIN' }])), {
    message: /keyhole does not run COPY/,
  })
  const results = await send(new Pipeline([{ text: '' }, { text: 'SELECT 2 AS two' }]))
  t.same(results[1]!.rows, [{ two: 2 }])
  const p = new Pipeline([{ text: 'SELECT 1' }])
  p.handleCopyData()
  p.handlePortalSuspended()
  t.pass('no-op handlers')
})

// Where the status comes from: pg 8.21+ records it on the client (getTransactionStatus) before the
// active query hears of the ReadyForQuery; an older pg (a client without the method) only in the
// message, which a listener added per pipeline reads.
// After an error pg hands the ReadyForQuery to no query: read from the client, a failed pipeline's
// status stays unknown (its caller destroys the connection whatever it was).
// CI also runs the lowest pg of the peer range, whose client has no such method: there the first
// source is a listener too.
const reports = typeof (client as { getTransactionStatus?: unknown }).getTransactionStatus
const sources = [
  reports === 'function'
    ? (['a client that reports it (pg 8.21+)', client, 0, undefined] as const)
    : (['a client of pg before 8.21, by a listener', client, 1, 'E'] as const),
  ['a ReadyForQuery listener (pg before 8.21)', { query: client.query.bind(client) }, 1, 'E'],
] as const
const readyListeners = () =>
  (
    client as unknown as { connection: { listenerCount(event: string): number } }
  ).connection.listenerCount('readyForQuery')

for (const [source, statusSource, listeners, afterError] of sources) {
  t.test(`the server's transaction status at the pipeline's end, from ${source}`, async (t) => {
    const idle = new Pipeline([{ text: 'SELECT 1' }], statusSource)
    t.equal(idle.transactionStatus, undefined, 'unknown before it ran')
    const before = readyListeners()
    client.query(idle as never)
    t.equal(readyListeners() - before, listeners, 'listeners added while it runs')
    await idle.done
    t.equal(readyListeners(), before, 'none left behind')
    t.equal(idle.transactionStatus, 'I', 'the implicit transaction ended with the Sync')
    const open = new Pipeline([{ text: 'SELECT 1' }, { text: 'BEGIN' }], statusSource)
    await send(open)
    t.equal(open.transactionStatus, 'T', 'BEGIN made it explicit: it outlives the Sync')
    const failed = new Pipeline([{ text: 'SELECT 1/0' }], statusSource)
    await t.rejects(send(failed), { code: '22012' })
    // The error is reported before the ReadyForQuery: the next query waits for it.
    await client.query('ROLLBACK')
    t.equal(failed.transactionStatus, afterError, 'a failure inside it leaves it aborted')
    const closed = new Pipeline([{ text: 'SELECT 1' }], statusSource)
    await send(closed)
    t.equal(closed.transactionStatus, 'I')
  })
}

t.test('a client that reports no status: unknown, never taken for idle', async (t) => {
  const p = new Pipeline([{ text: 'SELECT 1' }], { getTransactionStatus: () => null })
  await send(p)
  t.equal(p.transactionStatus, undefined)
})

t.test('a named statement the server lost is told apart from other failures', async (t) => {
  const named = { name: 'pipeline_lost', text: 'SELECT 1 AS one' }
  const first = new Pipeline([named])
  await send(first)
  t.equal(first.lostPrepared, false)
  await client.query('DEALLOCATE pipeline_lost')
  const lost = new Pipeline([{ text: 'SELECT 2' }, named])
  await t.rejects(send(lost), { code: '26000' })
  t.equal(lost.lostPrepared, true, 'pg bound it without a Parse; the server had dropped it')
  const sql = new Pipeline([{ text: 'DEALLOCATE pipeline_never_prepared' }])
  await t.rejects(send(sql), { code: '26000' })
  t.equal(sql.lostPrepared, false, "the same code from a statement's own SQL")
  const other = new Pipeline([{ text: 'SELECT 1/0' }])
  await t.rejects(send(other), { code: '22012' })
  t.equal(other.lostPrepared, false)
})
