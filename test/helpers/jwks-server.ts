/**
 * A JSON Web Key Set served over HTTP on 127.0.0.1 (random port), whose keys, delay and status a
 * test can change, counting the fetches.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { JWK } from 'jose'

export interface JwksServer {
  readonly url: string
  /** The keys served; replace to rotate. */
  keys: JWK[]
  /** Milliseconds to wait before answering. */
  delay: number
  /** The HTTP status answered (200 serves the keys). */
  status: number
  /** Fetches answered so far. */
  readonly fetches: number
  close(): Promise<void>
}

/** Starts the server; close it in teardown. */
export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  let fetches = 0
  const state = { keys, delay: 0, status: 200 }
  const server = createServer((_request, response) => {
    fetches++
    setTimeout(() => {
      response.writeHead(state.status, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ keys: state.keys }))
    }, state.delay).unref()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get keys() {
      return state.keys
    },
    set keys(value) {
      state.keys = value
    },
    get delay() {
      return state.delay
    },
    set delay(value) {
      state.delay = value
    },
    get status() {
      return state.status
    },
    set status(value) {
      state.status = value
    },
    get fetches() {
      return fetches
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
