/**
 * The precheck's canonical base64url rule, checked against its definition: a segment is accepted
 * exactly when decoding and re-encoding it gives it back (no padding, no impossible length, no
 * non-zero spare bits in the last character).
 */
import t from 'tap'
import { createPrecheck } from '../../src/token/precheck-token.ts'
import { b64 } from '../helpers/tokens.ts'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const header = b64({ alg: 'HS256', typ: 'JWT' })
const payload = b64({ sub: 'alice' })
const algorithms = new Set(['HS256'])

const reencodes = (segment: string) =>
  Buffer.from(segment, 'base64url').toString('base64url') === segment

/** Whether a fresh precheck (no header remembered) accepts the token. */
function accepted(token: string): boolean {
  try {
    createPrecheck(8192, algorithms)(token)
    return true
  } catch (error) {
    if ((error as { code?: string }).code !== 'KH_TOKEN_MALFORMED') throw error
    return false
  }
}

t.test(
  'a signature is accepted exactly when it is canonical, for every last one or two characters',
  async (t) => {
    let disagreements = 0
    let checked = 0
    for (const prefix of ['', 'AAAA', 'AAAAA', 'AAAAAA']) {
      for (const a of ALPHABET) {
        for (const tail of [a, ...[...ALPHABET].map((b) => a + b)]) {
          const signature = prefix + tail
          checked++
          if (accepted(`${header}.${payload}.${signature}`) !== reencodes(signature)) {
            disagreements++
          }
        }
      }
    }
    t.equal(disagreements, 0, `${checked} signatures: precheck agrees with re-encoding`)
  },
)

t.test('the header and payload follow the same rule', async (t) => {
  for (const [name, segment] of [
    ['header', header],
    ['payload', payload],
  ] as const) {
    const last = segment.at(-1) as string
    const spare = ALPHABET[(ALPHABET.indexOf(last) | 1) % 64] as string
    const altered = segment.slice(0, -1) + spare
    const token = name === 'header' ? `${altered}.${payload}.c2ln` : `${header}.${altered}.c2ln`
    t.equal(accepted(token), reencodes(altered), `${name} ending in ${spare}`)
    t.notOk(
      accepted(name === 'header' ? `${segment}=.${payload}.c2ln` : `${header}.${segment}=.c2ln`),
      `${name} with padding`,
    )
  }
})

t.test(
  'createPrecheck: a header seen before is reused, and the rest of each token still checked',
  async (t) => {
    const allowlist = new Set(['HS256'])
    const precheck = createPrecheck(8192, allowlist)
    const first = precheck(`${header}.${payload}.c2ln`)
    t.same(first, { alg: 'HS256', typ: 'JWT' })
    t.ok(Object.isFrozen(first), 'the header is frozen: it is shared by the tokens that carry it')
    t.equal(precheck(`${header}.${b64({ sub: 'bob' })}.c2ln`), first, 'the same header segment')
    const invalidUtf8 = Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')
    const refusedAfterAHit: [string, string, string][] = [
      ['padded payload', `${header}.${payload}=.c2ln`, 'KH_TOKEN_MALFORMED'],
      ['payload not UTF-8', `${header}.${invalidUtf8}.c2ln`, 'KH_TOKEN_MALFORMED'],
      ['spare bits in the signature', `${header}.${payload}.c2lnc2m`, 'KH_TOKEN_MALFORMED'],
      ['a fourth segment', `${header}.${payload}.c2ln.c2ln`, 'KH_TOKEN_MALFORMED'],
      ['non-ASCII within the cap', `${header}.${payload}.c2l\u00e9`, 'KH_TOKEN_MALFORMED'],
      ['over the cap', `${header}.${'A'.repeat(8200)}.c2ln`, 'KH_TOKEN_TOO_LARGE'],
    ]
    for (const [name, token, code] of refusedAfterAHit) {
      t.throws(() => precheck(token), { code }, name)
    }
    // The allowlist was copied: the caller's set changing afterwards changes nothing.
    allowlist.add('none')
    allowlist.delete('HS256')
    const none = b64({ alg: 'none' })
    for (let i = 0; i < 2; i++) {
      t.throws(
        () => precheck(`${none}.${payload}.c2ln`),
        { code: 'KH_TOKEN_ALGORITHM' },
        `none ${i}`,
      )
    }
    t.equal(precheck(`${header}.${payload}.c2ln`).alg, 'HS256')
    // A refused header is never remembered; another accepted one takes the place of the first.
    const withKid = b64({ alg: 'HS256', kid: 'k1' })
    t.throws(() => precheck(`${b64({ alg: 'HS256', kid: 1 })}.${payload}.c2ln`), {
      code: 'KH_TOKEN_MALFORMED',
    })
    t.same(precheck(`${withKid}.${payload}.c2ln`), { alg: 'HS256', kid: 'k1' })
    t.same(precheck(`${header}.${payload}.c2ln`), first)
  },
)
