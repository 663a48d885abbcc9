// autocannon ships no types; the little the HTTP benchmark uses.
declare module 'autocannon' {
  interface Options {
    url: string
    connections?: number
    duration?: number
    requests?: object[]
  }
  interface Result {
    requests: { average: number; total: number }
    latency: { p99: number }
    non2xx: number
    errors: number
    timeouts: number
  }
  export default function autocannon(options: Options): Promise<Result>
}
