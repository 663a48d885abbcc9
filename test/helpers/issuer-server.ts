/**
 * An identity provider's public endpoints on 127.0.0.1 (random port): whatever a test puts at a
 * path (status, body, delay), a 404 elsewhere, and the paths requested, in order.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Answer {
  readonly status?: number
  /** A string is sent as is; anything else as JSON. */
  readonly body?: unknown
  /** Milliseconds to wait before answering. */
  readonly delay?: number
  /** Milliseconds to wait between the status line and the body. */
  readonly bodyDelay?: number
  readonly headers?: Record<string, string>
}

export interface IssuerServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly origin: string
  /** What each path answers; replace or change it per test. */
  routes: Record<string, Answer>
  /** Every path requested so far. */
  readonly requested: string[]
  close(): Promise<void>
}

/** Starts the server; close it in teardown. */
export async function startIssuerServer(): Promise<IssuerServer> {
  const state: { routes: Record<string, Answer> } = { routes: {} }
  const requested: string[] = []
  const server = createServer((request, response) => {
    const path = request.url ?? '/'
    requested.push(path)
    const answer = state.routes[path] ?? { status: 404, body: 'not found' }
    setTimeout(() => {
      const body = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)
      response.writeHead(answer.status ?? 200, {
        'content-type': 'application/json',
        ...answer.headers,
      })
      if (answer.bodyDelay === undefined) return void response.end(body)
      response.flushHeaders()
      setTimeout(() => response.end(body), answer.bodyDelay).unref()
    }, answer.delay ?? 0).unref()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    get routes() {
      return state.routes
    },
    set routes(value) {
      state.routes = value
    },
    requested,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
