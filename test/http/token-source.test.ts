/**
 * The token cookie, read with the `cookie` package as Express and @fastify/cookie read cookies:
 * RFC 6265 quoting and percent-decoding, blanks trimmed as HTTP defines them (space and tab), and
 * keyhole's own rule on top: a cookie name sent twice is ambiguous.
 */
import t from 'tap'
import { tokenSource } from '../../src/http/token-source.ts'

const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln'
const request = (cookie: string | undefined) => ({
  headers: { cookie },
  rawHeaders: cookie === undefined ? [] : ['Cookie', cookie],
})
const read = (cookie: string | undefined) =>
  tokenSource(request(cookie), 'session', 'keyhole').cookie

t.test('the token cookie, read from the Cookie header', async (t) => {
  const rows: [string, string | undefined, string | undefined][] = [
    ['alone', `session=${token}`, token],
    ['among others', `a=1; session=${token}; b=2`, token],
    ['no space after ;', `a=1;session=${token}`, token],
    ['spaces and tabs around name and value', ` session \t= \t${token} ;`, token],
    ['quoted (RFC 6265 §4.1.1): the quotes are not part of the value', `session="${token}"`, token],
    ['percent-encoded', `session=${token.replaceAll('.', '%2E')}`, token],
    ['an invalid escape is left as is', 'session=a%zzb', 'a%zzb'],
    ['one quote only is part of the value', `session="${token}`, `"${token}`],
    ['a no-break space is not HTTP whitespace', `session=\u00a0${token}`, `\u00a0${token}`],
    ['a vertical tab neither', `session=${token}\v`, `${token}\v`],
    ['another name', `sessionid=${token}; xsession=${token}`, undefined],
    ['a pair without =', `session; a=1`, undefined],
    ['empty', 'session=', ''],
    ['another cookie twice', `a=1; session=${token}; a=2`, token],
    ['no Cookie header', undefined, undefined],
  ]
  for (const [name, header, expected] of rows) t.equal(read(header), expected, name)
})

t.test('the token cookie twice is ambiguous, whatever the values', async (t) => {
  for (const header of [
    `session=${token}; session=${token}`,
    `session=${token}; session=other`,
    `session=${token};session="${token}"`,
    `session=a; x=1; \tsession =b`,
    'session=; session=b',
  ]) {
    t.throws(
      () => read(header),
      { code: 'KH_TOKEN_AMBIGUOUS', statusCode: 401, realm: 'keyhole' },
      header,
    )
  }
})

t.test('no cookie configured: the Cookie header is not read', async (t) => {
  t.same(tokenSource(request(`session=${token}; session=x`), undefined, 'keyhole'), {
    authorization: undefined,
    cookie: undefined,
  })
})

t.test('two Authorization headers are ambiguous (Node keeps only the first)', async (t) => {
  const one = {
    headers: { authorization: `Bearer ${token}` },
    rawHeaders: ['Authorization', `Bearer ${token}`],
  }
  t.same(tokenSource(one, undefined, 'keyhole'), {
    authorization: `Bearer ${token}`,
    cookie: undefined,
  })
  const two = { ...one, rawHeaders: [...one.rawHeaders, 'authorization', 'Bearer x.y.z'] }
  t.throws(() => tokenSource(two, undefined, 'keyhole'), { code: 'KH_TOKEN_AMBIGUOUS' })
})
