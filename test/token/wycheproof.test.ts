/**
 * Project Wycheproof's JSON Web Signature vectors (C2SP/wycheproof, Apache-2.0; origin, commit and
 * licence in test/fixtures/wycheproof/README.md) through keyhole's public verifier: the core
 * entry point's `createAuthenticator`, each vector group's key mapped to keyhole's options, each
 * vector sent as a bearer token.
 *
 * - every invalid vector is refused;
 * - a valid vector is accepted when its payload is a JWT claims set (none of the 46 is: their
 *   payloads are `foo`, `Test`, empty, binary or prose), otherwise refused for a reason stated
 *   below, before any other, and the refusal must be the one that reason predicts. For the
 *   "not a claims set" reason that means jose's claims-set error, raised only after the signature
 *   verified: keyhole checked those signatures and found them good.
 *
 * Asymmetric keys are tried both ways an application configures them: `publicKey` (the group's
 * public JWK) and `jwksUrl` (a key set served over HTTP holding that JWK). HMAC keys: `secret`.
 */
import { readFile } from 'node:fs/promises'
import { compactVerify, errors, importJWK, type JWK } from 'jose'
import t from 'tap'
import {
  createAuthenticator,
  supportedAlgorithms,
  type Algorithm,
  type Authenticator,
  type KeyholeOptions,
} from '../../src/index.ts'
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts'

interface Vector {
  readonly tcId: number
  readonly comment: string
  readonly jws: string | Record<string, unknown>
  readonly result: 'valid' | 'invalid'
  readonly flags: readonly string[]
}
interface Group {
  readonly comment: string
  readonly private?: JWK
  readonly public?: JWK
  readonly tests: readonly Vector[]
}
interface Suite {
  readonly numberOfTests: number
  readonly testGroups: readonly Group[]
}

const suite = JSON.parse(
  await readFile(
    new URL('../fixtures/wycheproof/json_web_signature_test.json', import.meta.url),
    'utf8',
  ),
) as Suite

type Mode = 'secret' | 'publicKey' | 'jwksUrl'

const supported = new Set<string>(supportedAlgorithms)
const curveAlgorithm: Record<string, Algorithm> = {
  'P-256': 'ES256',
  'P-384': 'ES384',
  'P-521': 'ES512',
}

/** The protected header of a compact vector, or undefined. */
function headerOf(jws: Vector['jws']): Record<string, unknown> | undefined {
  if (typeof jws !== 'string') return undefined
  try {
    return JSON.parse(Buffer.from(jws.split('.')[0] as string, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
}

/**
 * The one algorithm an application would list for the group's key: the key's own `alg` when it
 * names a JWS algorithm keyhole verifies; for an EC key whose `alg` does not (RFC 7520's `ES521`),
 * the curve's; for a key without `alg` (the encryption keys), the algorithm its vectors claim.
 */
function algorithmOf(group: Group): Algorithm {
  const key = (group.public ?? group.private) as JWK
  if (key.alg !== undefined && supported.has(key.alg)) return key.alg as Algorithm
  if (key.kty === 'EC') return curveAlgorithm[key.crv as string] as Algorithm
  return headerOf(group.tests[0]!.jws)!.alg as Algorithm
}

function modesOf(group: Group): Mode[] {
  return group.public === undefined ? ['secret'] : ['publicKey', 'jwksUrl']
}

/** keyhole's options for the group's key; no claim is required (the payloads carry none). */
function optionsOf(group: Group, mode: Mode, server: JwksServer): KeyholeOptions {
  const base = { algorithms: [algorithmOf(group)], requireExp: false }
  if (mode === 'secret') {
    return { ...base, secret: Buffer.from(group.private!.k as string, 'base64url') }
  }
  if (mode === 'publicKey') return { ...base, publicKey: group.public as JWK }
  server.keys = [group.public as JWK]
  return { ...base, jwksUrl: server.url, jwks: { cooldownDuration: 60_000 } }
}

/** How keyhole answered one vector. */
type Outcome =
  | { readonly accepted: true }
  | { readonly accepted: false; readonly code: string; readonly cause?: unknown }

async function judge(authenticator: Authenticator | Error, jws: Vector['jws']): Promise<Outcome> {
  if (authenticator instanceof Error) {
    return { accepted: false, code: (authenticator as { code?: string }).code ?? 'unknown' }
  }
  const token = typeof jws === 'string' ? jws : JSON.stringify(jws)
  try {
    await authenticator.authenticate({ authorization: `Bearer ${token}` })
    return { accepted: true }
  } catch (error) {
    const { code, cause } = error as { code: string; cause?: unknown }
    return { accepted: false, code, cause }
  }
}

const base64url = /^[A-Za-z0-9_-]*$/
const canonical = (segment: string) =>
  base64url.test(segment) && Buffer.from(segment, 'base64url').toString('base64url') === segment
const utf8 = new TextDecoder('utf-8', { fatal: true })

function payloadText(jws: string): string | undefined {
  try {
    return utf8.decode(Buffer.from(jws.split('.')[1] as string, 'base64url'))
  } catch {
    return undefined
  }
}

function isClaimsSet(jws: string): boolean {
  const text = payloadText(jws)
  try {
    const value = JSON.parse(text as string)
    return typeof value === 'object' && value !== null && !Array.isArray(value)
  } catch {
    return false
  }
}

/**
 * Why a valid vector is refused, in the order keyhole checks: the first reason that applies to
 * the vector is the one its refusal must show.
 */
interface Reason {
  readonly reason: string
  applies(vector: Vector, group: Group, mode: Mode): boolean
  refusal(outcome: Outcome & { accepted: false }): boolean
}

const reasons: readonly Reason[] = [
  {
    reason:
      "key refused at registration: the JWK's alg (ES521, as in RFC 7520) names no JWS algorithm, and a publicKey serves exactly the one algorithm listed (ES512)",
    applies: (_v, group, mode) => mode === 'publicKey' && group.public?.alg === 'ES521',
    refusal: (o) => o.code === 'KH_INVALID_OPTIONS',
  },
  {
    reason:
      "algorithm not allowed: the token's alg (PS384, RFC 7520 figure 20) is not the one the key is for (its JWK says PS256); one key serves one algorithm",
    applies: (vector, group) => headerOf(vector.jws)?.alg !== algorithmOf(group),
    refusal: (o) => o.code === 'KH_TOKEN_ALGORITHM',
  },
  {
    reason:
      'no key in the key set for the algorithm: the JWK says alg ES521, so jose never selects it for ES512',
    applies: (_v, group, mode) => mode === 'jwksUrl' && group.public?.alg === 'ES521',
    refusal: (o) => o.code === 'KH_TOKEN_KEY_UNKNOWN',
  },
  {
    reason:
      'not canonical compact base64url: a character outside the alphabet, or an empty payload segment (keyhole accepts three non-empty canonical segments only)',
    applies: (vector) => {
      const parts = (vector.jws as string).split('.')
      return parts.some((part) => part === '' || !canonical(part))
    },
    refusal: (o) => o.code === 'KH_TOKEN_MALFORMED' && o.cause === undefined,
  },
  {
    reason: 'payload not UTF-8, so not a JWT claims set (refused before the signature check)',
    applies: (vector) => payloadText(vector.jws as string) === undefined,
    refusal: (o) => o.code === 'KH_TOKEN_MALFORMED' && o.cause instanceof TypeError,
  },
  {
    reason:
      'payload not a JWT claims set (a JSON object); refused by jose after the signature verified',
    applies: (vector) => !isClaimsSet(vector.jws as string),
    refusal: (o) => o.code === 'KH_TOKEN_MALFORMED' && o.cause instanceof errors.JWTInvalid,
  },
]

const server = await startJwksServer([])
t.teardown(() => server.close())

/** Per vector, what each key configuration did with it. */
const runs = new Map<
  number,
  { vector: Vector; results: { accepted: boolean; reason?: string; code?: string }[] }
>()

t.equal(suite.numberOfTests, 401, 'the pinned file: 401 vectors')

for (const [index, group] of suite.testGroups.entries()) {
  for (const mode of modesOf(group)) {
    t.test(`group ${index} (${group.comment}, ${algorithmOf(group)}) via ${mode}`, async (t) => {
      const authenticator = await createAuthenticator(optionsOf(group, mode, server)).catch(
        (error: Error) => error,
      )
      for (const vector of group.tests) {
        const outcome = await judge(authenticator, vector.jws)
        const name = `tcId ${vector.tcId} ${vector.comment} (${vector.result})`
        const run = runs.get(vector.tcId) ?? { vector, results: [] }
        runs.set(vector.tcId, run)
        const code = outcome.accepted ? undefined : outcome.code
        if (vector.result === 'invalid') {
          t.notOk(outcome.accepted, name)
          run.results.push({ accepted: outcome.accepted, code })
          continue
        }
        const reason = reasons.find((r) => r.applies(vector, group, mode))
        if (reason === undefined) {
          t.ok(outcome.accepted, `${name}: a JWT claims set, accepted`)
        } else {
          t.ok(!outcome.accepted && reason.refusal(outcome), `${name}: ${reason.reason}`)
        }
        run.results.push({ accepted: outcome.accepted, reason: reason?.reason, code })
      }
    })
  }
}

/** Whether jose's compactVerify alone, with the group's key and no algorithm list, accepts it. */
async function joseAccepts(group: Group, jws: Vector['jws']): Promise<boolean> {
  try {
    const alg = algorithmOf(group)
    const key =
      group.public === undefined
        ? Buffer.from(group.private!.k as string, 'base64url')
        : await importJWK(group.public, alg)
    await compactVerify(jws as string, key)
    return true
  } catch {
    return false
  }
}

t.test('counts', async (t) => {
  const vectors = [...runs.values()]
  const invalid = vectors.filter((r) => r.vector.result === 'invalid')
  const valid = vectors.filter((r) => r.vector.result === 'valid')
  const refusedEverywhere = invalid.filter((r) => r.results.every((x) => !x.accepted))
  t.equal(vectors.length, 401)
  t.equal(
    refusedEverywhere.length,
    invalid.length,
    'every invalid vector refused in every configuration',
  )
  t.comment(
    `vectors: ${vectors.length}; key configurations tried: ${vectors.reduce((n, r) => n + r.results.length, 0)} runs`,
  )
  t.comment(
    `invalid: ${refusedEverywhere.length} of ${invalid.length} refused (in every configuration)`,
  )
  const byCode = new Map<string, number>()
  for (const r of invalid) {
    const codes = [...new Set(r.results.map((x) => x.code))].join(' / ')
    byCode.set(codes, (byCode.get(codes) ?? 0) + 1)
  }
  for (const [codes, n] of byCode) t.comment(`  ${n}: ${codes}`)
  const byReason = new Map<string, number>()
  for (const r of valid) {
    const why = [...new Set(r.results.map((x) => x.reason ?? 'accepted'))].join(' | ')
    byReason.set(why, (byReason.get(why) ?? 0) + 1)
  }
  const accepted = valid.filter((r) => r.results.some((x) => x.accepted))
  t.comment(`valid: ${accepted.length} of ${valid.length} accepted`)
  for (const [why, n] of byReason) t.comment(`  ${n}: ${why}`)
  const groupOf = new Map(suite.testGroups.flatMap((g) => g.tests.map((v) => [v.tcId, g] as const)))
  const joseOnly: string[] = []
  for (const r of invalid) {
    if (await joseAccepts(groupOf.get(r.vector.tcId)!, r.vector.jws)) {
      joseOnly.push(
        `${r.vector.tcId} ${r.vector.comment} → ${[...new Set(r.results.map((x) => x.code))].join(' / ')}`,
      )
    }
  }
  t.comment(
    `invalid vectors jose's compactVerify alone accepts: ${joseOnly.length}; keyhole refuses them as:`,
  )
  for (const line of joseOnly) t.comment(`  ${line}`)
})
