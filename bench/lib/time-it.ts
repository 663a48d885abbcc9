/** Mean milliseconds per call of a synchronous or asynchronous function, measured for `minMs` at least. */
export async function timeIt(fn: () => unknown, minMs: number): Promise<number> {
  for (let i = 0; i < 3; i++) await fn()
  let calls = 0
  const start = process.hrtime.bigint()
  let elapsed = 0
  while (elapsed < minMs) {
    await fn()
    calls++
    elapsed = Number(process.hrtime.bigint() - start) / 1e6
  }
  return elapsed / calls
}

/**
 * Mean milliseconds per call of `fn` on a payload freshly parsed from `json` before each call (the
 * parse not timed), measured for `minMs` of timed calls at least.
 */
export async function timeFresh(
  json: string,
  fn: (payload: Readonly<Record<string, unknown>>) => unknown,
  minMs: number,
): Promise<number> {
  for (let i = 0; i < 3; i++) fn(JSON.parse(json) as Record<string, unknown>)
  let calls = 0
  let timed = 0n
  while (Number(timed) / 1e6 < minMs) {
    const payload = Object.freeze(JSON.parse(json) as Record<string, unknown>)
    const start = process.hrtime.bigint()
    fn(payload)
    timed += process.hrtime.bigint() - start
    calls++
  }
  return Number(timed) / 1e6 / calls
}
