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
