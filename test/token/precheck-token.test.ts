/**
 * precheckToken's canonical base64url rule, checked against its definition: a segment is accepted
 * exactly when decoding and re-encoding it gives it back (no padding, no impossible length, no
 * non-zero spare bits in the last character).
 */
import t from 'tap'
import { precheckToken } from '../../src/token/precheck-token.ts'
import { b64 } from '../helpers/tokens.ts'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const header = b64({ alg: 'HS256', typ: 'JWT' })
const payload = b64({ sub: 'alice' })
const algorithms = new Set(['HS256'])

const reencodes = (segment: string) =>
  Buffer.from(segment, 'base64url').toString('base64url') === segment

function accepted(token: string): boolean {
  try {
    precheckToken(token, 8192, algorithms)
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
