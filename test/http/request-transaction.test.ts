/**
 * One request's transaction when the pool cannot give a connection: the statement fails with 503
 * KH_UNAVAILABLE (the pool's error as its cause, never in the answer), and ending the request has
 * nothing left to do (nothing was opened).
 */
import t from 'tap'
import { createSessionFactory } from '../../src/db/session.ts'
import { requestTransaction } from '../../src/http/request-database.ts'
import { generateSigningKey } from '../../src/db/signing-key.ts'
import { capability as makeCapability } from '../db/helpers/keyhole.ts'

t.test('a pool that cannot connect: the statement fails, end() resolves', async (t) => {
  const down = new Error('connect ECONNREFUSED')
  const sessions = createSessionFactory({
    pool: { connect: () => Promise.reject(down) },
    signingKey: generateSigningKey(),
  })
  const capability = makeCapability({ subject: 'alice', groups: { member: ['g1'] } })
  const transaction = requestTransaction(sessions, capability)
  await t.rejects(transaction.queryable.query('SELECT 1'), {
    code: 'KH_UNAVAILABLE',
    statusCode: 503,
    cause: down,
  })
  await t.resolves(transaction.end(true))
  await t.resolves(transaction.end(false), 'a second end has nothing to do')
  await t.rejects(transaction.queryable.query('SELECT 1'), /ended/, 'dead once ended')
})
