/**
 * extractToken only decides where the one token is. Sources come from adapters as strings;
 * anything else is refused, never coerced (an array of two headers would stringify to one).
 */
import t from 'tap'
import { extractToken, type TokenSource } from '../../src/token/extract-token.ts'

t.test('values that are not strings are KH_TOKEN_MALFORMED', async (t) => {
  const rows: [string, unknown][] = [
    ['authorization an array', { authorization: ['Bearer a.b.c'] }],
    ['authorization an object', { authorization: { toString: () => 'Bearer a.b.c' } }],
    ['authorization a number', { authorization: 1 }],
    ['cookie an array', { cookie: ['a.b.c'] }],
    ['cookie with a bearer header, not a string', { authorization: 'Bearer a.b.c', cookie: 1 }],
  ]
  for (const [name, source] of rows) {
    t.throws(() => extractToken(source as TokenSource), { code: 'KH_TOKEN_MALFORMED' }, name)
  }
})

t.test('no source at all is KH_TOKEN_MISSING', async (t) => {
  for (const source of [undefined, null, {}]) {
    t.throws(() => extractToken(source as unknown as TokenSource), { code: 'KH_TOKEN_MISSING' })
  }
})

t.test('one token, from the header or the cookie', async (t) => {
  t.equal(extractToken({ authorization: 'bearer a.b.c' }), 'a.b.c', 'scheme case-insensitive')
  t.equal(extractToken({ cookie: 'a.b.c' }), 'a.b.c')
  t.equal(extractToken({ authorization: 'Bearer a.b.c', cookie: '' }), 'a.b.c', 'empty cookie')
  t.equal(extractToken({ authorization: 'Basic YTpi', cookie: 'a.b.c' }), 'a.b.c')
})
