/**
 * `request.db` for adapters without a pre-send hook (Express): the request's handle on first use;
 * in 'rls' mode with request transactions, the response is held at its first byte until the
 * transaction has committed (rolled back for a status of 400 or more), and a response that closes
 * without finishing rolls back. Node's response only: no framework.
 */
import type { ServerResponse } from 'node:http'
import type { Capability } from '../capability/capability.ts'
import type { PolicyHandle } from '../sql/policies.ts'
import { holdResponse } from './hold-response.ts'
import type { RequestDatabases } from './request-database.ts'

const kStatement = Symbol('keyhole.statementTransactions')
const kOpened = Symbol('keyhole.dbOpened')

interface HeldRequest {
  readonly capability: Capability | null
  [kStatement]?: true
  [kOpened]?: true
}

/* c8 ignore next 2 -- a rollback never rejects (the session destroys a client whose ROLLBACK
   failed): this catch only keeps a change there from becoming an unhandled rejection */
const ignore = () => {}

interface ErrorLogger {
  error(details: object, message: string): void
}

/** The answer to a request whose COMMIT failed: a 500 that says nothing more. */
const commitFailed = Object.freeze({
  statusCode: 500,
  error: 'Internal Server Error',
  message: 'Internal Server Error',
})

/**
 * Defines `request.db` on `request`. A COMMIT that failed (a deferred constraint, a transaction a
 * swallowed SQL error aborted, a lost connection) is logged at error and answered with `send`'s
 * generic 500 (nothing has been sent yet).
 */
export function defineHeldDatabase(
  request: { readonly capability: Capability | null },
  res: ServerResponse,
  databases: RequestDatabases,
  answer: { logger: ErrorLogger; send: (statusCode: number, body: object) => void },
): void {
  const onFailure = (error: unknown) => {
    answer.logger.error({ err: error }, 'keyhole: the request transaction did not commit')
    answer.send(500, commitFailed)
  }
  const req = request as HeldRequest
  Object.defineProperty(req, 'db', {
    configurable: true,
    enumerable: false,
    get(): PolicyHandle {
      const mode = req[kStatement] === true ? 'statement' : 'request'
      const handle = databases.handle(req, req.capability, mode)
      if (req[kOpened] === true) return handle
      req[kOpened] = true
      if (!databases.transactional || mode === 'statement') return handle
      holdResponse(res, (statusCode) => databases.end(req, statusCode < 400), onFailure)
      // After a finished response this finds the transaction ended: it only acts on an abort.
      res.once('close', () => void databases.end(req, false).catch(ignore))
      return handle
    },
  })
}

/**
 * Makes `request.db`'s statements commit each alone ('statement' mode). False, and nothing
 * changed, when `request.db` was already used: its transaction mode is set.
 */
export function useStatementTransactions(request: object): boolean {
  const req = request as HeldRequest
  if (req[kOpened] === true) return false
  req[kStatement] = true
  return true
}
