import t from 'tap'
import { ServiceUnavailable, type KeyholeError } from '../../src/errors.ts'
import { mapDatabaseError } from '../../src/sql/map-database-error.ts'

const pgError = (code: string, extra: object = {}) =>
  Object.assign(new Error('duplicate key value violates unique constraint "x"'), {
    code,
    detail: 'Key (id)=(42) already exists.',
    ...extra,
  })

const cases: [string, string, string, string, number][] = [
  ['42501', 'insert', 'posts', 'KH_CAPABILITY_DENIED', 404],
  ['23505', 'insert', 'posts', 'KH_CONFLICT', 409],
  ['23503', 'insert', 'posts', 'KH_NOT_FOUND', 404],
  ['23503', 'delete', 'groups', 'KH_CONFLICT', 409],
  ['22P02', 'select', 'posts', 'KH_BAD_REQUEST', 400],
  ['22021', 'insert', 'posts', 'KH_BAD_REQUEST', 400],
  ['22P05', 'insert', 'posts', 'KH_BAD_REQUEST', 400],
  ['23502', 'update', 'posts', 'KH_BAD_REQUEST', 400],
  ['23514', 'update', 'posts', 'KH_BAD_REQUEST', 400],
  ['42703', 'insert', 'posts', 'KH_BAD_REQUEST', 400],
]

t.test('SQLSTATE → keyhole error, never echoing the message or DETAIL', async (t) => {
  for (const [code, operation, table, expected, status] of cases) {
    const original = pgError(code)
    const mapped = mapDatabaseError(original, {
      table,
      operation: operation as 'insert',
    }) as Error & { code: string; statusCode: number }
    t.match(mapped, { code: expected, statusCode: status }, `${code} on ${operation}`)
    t.notMatch(mapped.message + JSON.stringify(mapped), /Key|42|duplicate/)
    t.equal(mapped.cause, original)
    t.notOk(Object.keys(mapped).includes('cause'))
  }
})

t.test('23503 on update: own row → 404, referenced by others → 409', async (t) => {
  t.match(
    mapDatabaseError(pgError('23503', { table: 'posts' }), {
      table: 'public.posts',
      operation: 'update',
    }),
    { code: 'KH_NOT_FOUND' },
  )
  t.match(
    mapDatabaseError(pgError('23503', { table: 'posts' }), {
      table: 'discussion_threads',
      operation: 'update',
    }),
    { code: 'KH_CONFLICT' },
  )
})

t.test(
  'a database that cannot serve now → 503, any other fault → 500, never its message',
  async (t) => {
    const network = (code: string) =>
      Object.assign(new Error(`connect ${code} 127.0.0.1:5432 role kh_runtime`), { code })
    const rows: [unknown, string, number][] = [
      [pgError('08006'), 'KH_UNAVAILABLE', 503],
      [pgError('28P01'), 'KH_UNAVAILABLE', 503],
      [pgError('40001'), 'KH_UNAVAILABLE', 503],
      [pgError('40P01'), 'KH_UNAVAILABLE', 503],
      [pgError('53300'), 'KH_UNAVAILABLE', 503],
      [pgError('57014'), 'KH_UNAVAILABLE', 503],
      [pgError('57P01'), 'KH_UNAVAILABLE', 503],
      [network('ECONNREFUSED'), 'KH_UNAVAILABLE', 503],
      [network('ECONNRESET'), 'KH_UNAVAILABLE', 503],
      [new Error('Connection terminated unexpectedly'), 'KH_UNAVAILABLE', 503],
      [new Error('timeout exceeded when trying to connect'), 'KH_UNAVAILABLE', 503],
      [pgError('42P01'), 'KH_DATABASE_ERROR', 500],
      [pgError('XX000'), 'KH_DATABASE_ERROR', 500],
    ]
    for (const [original, code, status] of rows) {
      const mapped = mapDatabaseError(original, {
        table: 'posts',
        operation: 'select',
      }) as KeyholeError
      const label = (original as { code?: string }).code ?? (original as Error).message
      t.match(mapped, { code, statusCode: status }, label)
      t.equal(mapped.cause, original, `${label}: the original is the cause`)
      t.notMatch(
        JSON.stringify(mapped.toJSON()),
        /kh_runtime|duplicate|Key|terminated|timeout/,
        label,
      )
    }
  },
)

t.test('anything not from the database passes through unchanged', async (t) => {
  const errors = [new ServiceUnavailable(), new Error('keyhole: the request transaction has ended')]
  for (const error of [...errors, new TypeError('circular'), pgError('bad'), null, 'text']) {
    t.equal(mapDatabaseError(error, { table: 'posts', operation: 'select' }), error)
  }
})
