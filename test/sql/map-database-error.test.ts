import t from 'tap'
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

t.test('anything else passes through unchanged', async (t) => {
  for (const error of [new Error('boom'), pgError('57014'), pgError('bad'), null, 'text']) {
    t.equal(mapDatabaseError(error, { table: 'posts', operation: 'select' }), error)
  }
})
