/**
 * Verify + derive per request: keyhole's `authenticate` for HS256 and ES256, with and without the
 * verified-token cache, against jose's `jwtVerify` alone with a pre-imported key (the floor).
 * Runnable on its own: `node --import tsx bench/verify.bench.ts`.
 */
import { jwtVerify } from 'jose'
import { Bench } from 'tinybench'
import { createAuthenticator } from '../src/token/authenticate.ts'
import { audience, claims, issuer, keys, secret, sign } from '../test/helpers/tokens.ts'
import type { BenchRow, BenchSection } from './lib/types.ts'

export async function run(context?: { quick?: boolean }): Promise<BenchSection> {
  const es = await keys('ES256')
  const hs = {
    token: await sign(claims()),
    options: { secret, algorithms: ['HS256' as const] },
    // Imported once, as keyhole does: a Uint8Array would make jose import the key on every call.
    key: await crypto.subtle.importKey(
      'raw',
      new TextEncoder().encode(secret),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['verify'],
    ),
  }
  const ec = {
    token: await sign(claims(), es.privateKey, { alg: 'ES256' }),
    options: { publicKey: es.publicKey, algorithms: ['ES256' as const] },
    key: es.publicKey,
  }
  const bench = new Bench({ time: context?.quick ? 200 : 1000 })
  const floors = new Map<string, string>()
  for (const [alg, setup] of [
    ['HS256', hs],
    ['ES256', ec],
  ] as const) {
    const source = { authorization: `Bearer ${setup.token}` }
    const cached = await createAuthenticator({ ...setup.options, issuer, audience })
    const uncached = await createAuthenticator({ ...setup.options, issuer, audience, cache: false })
    const floor = `jose jwtVerify ${alg} (pre-imported key)`
    floors.set(alg, floor)
    bench.add(floor, async () => {
      await jwtVerify(setup.token, setup.key, { algorithms: [alg], issuer, audience })
    })
    bench.add(`keyhole ${alg}, no cache`, async () => {
      await uncached.authenticate(source)
    })
    bench.add(`keyhole ${alg}, cache`, async () => {
      await cached.authenticate(source)
    })
  }
  await bench.run()
  const throughput = (task: (typeof bench.tasks)[number]) =>
    task.result.state === 'completed' ? task.result.throughput.mean : 0
  const ops = new Map(bench.tasks.map((task) => [task.name, throughput(task)]))
  const rows: BenchRow[] = bench.tasks.map((task) => {
    const alg = task.name.includes('HS256') ? 'HS256' : 'ES256'
    const baseline = floors.get(alg) as string
    const subject = ops.get(task.name) as number
    const baselineOps = ops.get(baseline) as number
    return {
      group: `verify ${alg}`,
      name: task.name,
      ops: Math.round(subject),
      baseline,
      baselineOps: Math.round(baselineOps),
      ratio: subject / baselineOps,
    }
  })
  return { title: 'Token verification + derivation per request', rows }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { rows } = await run()
  console.table(
    rows.map((row) => ({
      task: row.name,
      'ops/s': row.ops,
      'vs jose alone': `${(row.ratio as number).toFixed(2)}×`,
    })),
  )
}
