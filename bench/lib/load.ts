/**
 * The load generator of the HTTP benchmark, run as a child process so that autocannon never
 * shares an event loop with the servers it measures. Reads one JSON job from stdin, prints one
 * JSON result line: requests/s (mean), p99 latency (ms), non-2xx responses, errors, and the
 * generator's own CPU time (µs, user + system) so that a profile can subtract it.
 */
import autocannon from 'autocannon'

interface Job {
  url: string
  method: 'GET' | 'POST'
  body?: string
  /** Bearer tokens, used in turn, one per request. */
  tokens: string[]
  connections: number
  duration: number
}

let input = ''
for await (const chunk of process.stdin) input += chunk
const job = JSON.parse(input) as Job
let next = 0
const result = await autocannon({
  url: job.url,
  connections: job.connections,
  duration: job.duration,
  requests: [
    {
      method: job.method,
      ...(job.body === undefined ? {} : { body: job.body }),
      headers: { 'content-type': 'application/json' },
      setupRequest(request: { headers?: Record<string, string> }) {
        const token = job.tokens[next++ % job.tokens.length]
        request.headers = { ...request.headers, authorization: `Bearer ${token}` }
        return request
      },
    },
  ],
})
const cpu = process.cpuUsage()
process.stdout.write(
  JSON.stringify({
    rps: result.requests.average,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    total: result.requests.total,
    cpuUs: cpu.user + cpu.system,
  }) + '\n',
)
