/**
 * Token → capability per request, for HS256, RS256, ES256 and EdDSA: keyhole's `authenticate`
 * (extract, pre-check, verify, derive the capability) cold and with the verified-token cache,
 * against jose's `jwtVerify` alone with a pre-imported key (the floor keyhole builds on), fast-jwt
 * (the engine of `@fastify/jwt`, its cache off, as by default) and jsonwebtoken verifying the same
 * token with the same issuer and audience checks.
 *
 * Every side of one algorithm runs in turns (A B C D E, A B C D E…, each round starting with a
 * different side) and each ratio is the median of the per-round ratios (bench/lib/interleave.ts).
 *
 * Goals (issue #7): the cache ≥ 10× the cold path; keyhole's cold path within 10% of jose alone.
 * Runnable on its own: `node --import tsx bench/verify.bench.ts [--quick]`.
 */
import { createVerifier } from 'fast-jwt'
import jsonwebtoken from 'jsonwebtoken'
import { jwtVerify, type CryptoKey } from 'jose'
import { createAuthenticator } from '../src/token/authenticate.ts'
import { audience, claims, issuer, keys, secret, sign } from '../test/helpers/tokens.ts'
import { interleave, ratio, type Side, type SideResult } from './lib/interleave.ts'
import type { BenchRow, BenchSection, GoalResult } from './lib/types.ts'

type Algorithm = 'HS256' | 'RS256' | 'ES256' | 'EdDSA'
const ALGORITHMS: readonly Algorithm[] = ['HS256', 'RS256', 'ES256', 'EdDSA']

interface Setup {
  readonly token: string
  /** What keyhole is configured with. */
  readonly options: { secret: string } | { publicKey: CryptoKey }
  /** jose's pre-imported key. */
  readonly joseKey: CryptoKey
  /** The key as fast-jwt and jsonwebtoken take it: the secret or a PEM public key. */
  readonly pem: string
}

async function setupFor(alg: Algorithm): Promise<Setup> {
  if (alg === 'HS256') {
    return {
      token: await sign(claims()),
      options: { secret },
      // Imported once, as keyhole does: a Uint8Array would make jose import the key on every call.
      joseKey: await crypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(secret),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['verify'],
      ),
      pem: secret,
    }
  }
  const pair = await keys(alg)
  return {
    token: await sign(claims(), pair.privateKey, { alg }),
    options: { publicKey: pair.publicKey },
    joseKey: pair.publicKey,
    pem: pair.publicPem,
  }
}

/** Throws unless `verify` accepts the token: a side that fails would measure its error path. */
async function assertAccepts(name: string, verify: () => unknown): Promise<void> {
  try {
    await verify()
  } catch (error) {
    throw new Error(`bench: ${name} refused the benchmark token`, { cause: error })
  }
}

export async function run(context?: {
  quick?: boolean
  log?: (line: string) => void
}): Promise<BenchSection> {
  const quick = context?.quick === true
  const rounds = quick ? 3 : 6
  const roundMs = quick ? 60 : 200
  const rows: BenchRow[] = []
  const cacheGains: string[] = []
  const coldRatios: string[] = []
  let worstGain = Infinity
  let worstCold = Infinity
  for (const alg of ALGORITHMS) {
    context?.log?.(`  verify: ${alg}`)
    const setup = await setupFor(alg)
    const source = { authorization: `Bearer ${setup.token}` }
    const cached = await createAuthenticator({
      ...setup.options,
      algorithms: [alg],
      issuer,
      audience,
    })
    const cold = await createAuthenticator({
      ...setup.options,
      algorithms: [alg],
      issuer,
      audience,
      cache: false,
    })
    const fast = createVerifier({
      key: setup.pem,
      algorithms: [alg],
      allowedIss: issuer,
      allowedAud: audience,
    })
    const jose = () =>
      jwtVerify(setup.token, setup.joseKey, { algorithms: [alg], issuer, audience })
    const sides: Side[] = [
      { name: `jose jwtVerify ${alg} (pre-imported key)`, op: jose },
      { name: `keyhole ${alg}, no cache`, op: () => cold.authenticate(source) },
      { name: `keyhole ${alg}, cache`, op: () => cached.authenticate(source) },
      { name: `fast-jwt ${alg} (@fastify/jwt's engine)`, op: async () => fast(setup.token) },
    ]
    // jsonwebtoken has no EdDSA.
    if (alg !== 'EdDSA') {
      const jwtAlg = alg as jsonwebtoken.Algorithm
      sides.push({
        name: `jsonwebtoken ${alg}`,
        op: async () =>
          jsonwebtoken.verify(setup.token, setup.pem, { algorithms: [jwtAlg], issuer, audience }),
      })
    }
    for (const side of sides) await assertAccepts(side.name, () => side.op(0))
    // Enough operations per round for the slowest side (jose's cold verify) to take `roundMs`.
    const start = performance.now()
    let calibration = 0
    while (performance.now() - start < roundMs) {
      await jose()
      calibration++
    }
    const perRound = Math.max(50, calibration)
    const results = await interleave(sides, { rounds, perRound })
    const by = (prefix: string) =>
      results.find((r) => r.name.startsWith(prefix)) as SideResult | undefined
    const floor = results[0] as SideResult
    const keyholeCold = by('keyhole') as SideResult
    const keyholeCached = by(`keyhole ${alg}, cache`) as SideResult
    for (const result of results) {
      rows.push({
        group: `verify ${alg}`,
        name: result.name,
        ops: Math.round(result.ops),
        baseline: floor.name,
        baselineOps: Math.round(floor.ops),
        ratio: ratio(result, floor),
      })
    }
    const fastJwt = by('fast-jwt') as SideResult
    rows.push({
      group: `verify ${alg}`,
      name: `keyhole ${alg}, no cache`,
      ops: Math.round(keyholeCold.ops),
      baseline: fastJwt.name,
      baselineOps: Math.round(fastJwt.ops),
      ratio: ratio(keyholeCold, fastJwt),
    })
    const gain = ratio(keyholeCached, keyholeCold)
    rows.push({
      group: `verify ${alg}`,
      name: `keyhole ${alg}, cache`,
      ops: Math.round(keyholeCached.ops),
      baseline: `keyhole ${alg}, no cache`,
      baselineOps: Math.round(keyholeCold.ops),
      ratio: gain,
    })
    const coldRatio = ratio(keyholeCold, floor)
    cacheGains.push(`${alg}: ${gain.toFixed(0)}×`)
    coldRatios.push(`${alg}: ${coldRatio.toFixed(2)}×`)
    worstGain = Math.min(worstGain, gain)
    worstCold = Math.min(worstCold, coldRatio)
  }
  const goals: GoalResult[] = [
    {
      goal: 'Verify with the verified-token cache ≥ 10× verify without it (same token, same run)',
      measured: `${worstGain.toFixed(0)}× worst (${cacheGains.join(', ')})`,
      met: worstGain >= 10,
    },
    {
      goal: "keyhole's cold verify (extract, verify, derive) within 10% of jose's jwtVerify alone on the same token with a pre-imported key",
      measured: `${worstCold.toFixed(2)}× worst (${coldRatios.join(', ')})`,
      met: worstCold >= 0.9,
    },
  ]
  return {
    title: 'Token verification + derivation per request',
    rows,
    goals,
    notes: [
      `Sides interleaved per algorithm, ${rounds} rounds each as long as about ${roundMs} ms of jose's verify; ratio = median of the per-round ratios. One permission in the token; issuer and audience checked by every side.`,
      "jose verifies through WebCrypto (asynchronous); fast-jwt and jsonwebtoken use node:crypto synchronously, which is several times faster for HS256. keyhole's cache is what closes that gap when a user sends the same token again.",
      'jsonwebtoken has no EdDSA.',
    ],
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await run({ quick: process.argv.includes('--quick') })
  console.table(
    section.rows.map((row) => ({
      task: row.name,
      'ops/s': row.ops,
      against: row.baseline,
      ratio: `${(row.ratio as number).toFixed(2)}×`,
    })),
  )
  for (const goal of section.goals ?? []) console.log(goal.goal, '—', goal.measured, goal.met)
}
