/**
 * Holds a Node.js response until an asynchronous step (the request transaction's COMMIT) has
 * settled, so a client never receives a success for a write that did not commit: the first
 * `write()` or `end()` starts the step, and every call made meanwhile is replayed in order once it
 * succeeded. When it fails before anything was sent, nothing the handler wrote leaves: its headers
 * are dropped and `onFailure` answers instead (after an explicit `writeHead()`, the connection is
 * destroyed instead: the status line is already fixed). (express-session holds `res.end` the same way until
 * the session is saved.) For adapters without a pre-send hook; Fastify has `onSend`.
 */
import type { ServerResponse } from 'node:http'

type Call = readonly ['write' | 'end', unknown[]]

/**
 * @param settle started once, with the response's status at the first write or end
 * @param onFailure called with the original `write`/`end` restored and the headers cleared
 */
export function holdResponse(
  res: ServerResponse,
  settle: (statusCode: number) => Promise<void>,
  onFailure: (error: unknown) => void,
): void {
  const write = res.write
  const end = res.end
  const queue: Call[] = []
  let started = false

  const restore = () => {
    res.write = write
    res.end = end
  }
  const start = () => {
    if (started) return
    started = true
    settle(res.statusCode).then(
      () => {
        restore()
        for (const [method, args] of queue) {
          Reflect.apply(method === 'write' ? write : end, res, args)
        }
      },
      (error: unknown) => {
        restore()
        // An explicit writeHead() fixed the status line already: break the response rather than
        // let it end as a success.
        if (res.headersSent) {
          res.destroy()
          return
        }
        // Nothing has been sent: the held calls are dropped with the handler's headers.
        for (const name of res.getHeaderNames()) res.removeHeader(name)
        onFailure(error)
      },
    )
  }

  res.write = function heldWrite(...args: unknown[]) {
    queue.push(['write', args])
    start()
    return true
  } as ServerResponse['write']
  res.end = function heldEnd(...args: unknown[]) {
    queue.push(['end', args])
    start()
    return res
  } as ServerResponse['end']
}
