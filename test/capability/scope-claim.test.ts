/**
 * The scopes of a token: `scope` (a space-separated string, or a list) or `scp` (a list, or a
 * space-separated string), read into the capability's frozen, deduplicated `scopes`. A malformed
 * claim, or both claims, is a 401 `KH_TOKEN_SCOPE`, never an empty grant.
 */
import t from 'tap'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'
import { MAX_SCOPES, scopeClaimSchema, scopesOf } from '../../src/capability/scope-claim.ts'

const options = resolveCapabilityOptions()
const derive = (claims: Record<string, unknown>) =>
  deriveCapability({ sub: 'alice', ...claims }, options).capability

t.test('the shapes providers emit', async (t) => {
  const rows: [string, Record<string, unknown>, string[]][] = [
    ['no scope claim (no scopes, still authenticated)', {}, []],
    [
      'RFC 9068 scope string (Auth0, Keycloak, Cognito)',
      { scope: 'forum:read forum:write' },
      ['forum:read', 'forum:write'],
    ],
    ['an empty scope string', { scope: '' }, []],
    [
      'runs of spaces, leading and trailing',
      { scope: '  openid   forum:read ' },
      ['openid', 'forum:read'],
    ],
    ['scope as a list', { scope: ['forum:read'] }, ['forum:read']],
    ['scp as a list (Okta)', { scp: ['openid', 'forum:write'] }, ['openid', 'forum:write']],
    [
      'scp as a space-separated string (Entra ID)',
      { scp: 'User.Read Forum.Write' },
      ['User.Read', 'Forum.Write'],
    ],
    ['an empty scp list', { scp: [] }, []],
    ['duplicates collapse, in order', { scope: 'b a b a c' }, ['b', 'a', 'c']],
    [
      'URLs are scope tokens',
      { scope: 'https://api.example.com/forum.write' },
      ['https://api.example.com/forum.write'],
    ],
    ['every NQCHAR', { scope: '!#[]^_`{|}~' }, ['!#[]^_`{|}~']],
    [
      'the most scopes allowed',
      { scope: Array.from({ length: MAX_SCOPES }, (_, i) => `s${i}`).join(' ') },
      Array.from({ length: MAX_SCOPES }, (_, i) => `s${i}`),
    ],
  ]
  for (const [name, claims, scopes] of rows) {
    const capability = derive(claims)
    t.same(capability.scopes, scopes, name)
    t.ok(Object.isFrozen(capability.scopes), `${name}: frozen`)
    for (const scope of scopes.slice(0, 3))
      t.ok(capability.hasScope(scope), `${name}: has ${scope}`)
  }
})

t.test('scopes are exact: case, prefixes and parts are other scopes', async (t) => {
  const capability = derive({ scope: 'forum:read Forum.Write' })
  for (const other of ['Forum:read', 'forum', 'forum:', 'forum:read ', 'forum.write', 'read', '']) {
    t.notOk(capability.hasScope(other), JSON.stringify(other))
  }
  t.notOk(derive({}).hasScope('forum:read'), 'no claim, no scope')
})

t.test('a malformed claim, or both claims → 401 KH_TOKEN_SCOPE', async (t) => {
  const rows: [string, Record<string, unknown>][] = [
    ['scope and scp both present', { scope: 'a', scp: ['a'] }],
    ['both, even empty', { scope: '', scp: [] }],
    ['scope null', { scope: null }],
    ['scope a number', { scope: 42 }],
    ['scope an object', { scope: { read: true } }],
    ['scp true', { scp: true }],
    ['a list entry not a string', { scp: ['a', 1] }],
    ['a list entry with a space', { scp: ['forum:read forum:write'] }],
    ['an empty list entry', { scope: [''] }],
    ['a tab separator', { scope: 'a\tb' }],
    ['a newline', { scope: 'a\nb' }],
    ['a NUL byte', { scope: 'a\u0000' }],
    ['a double quote (it could break a challenge)', { scope: 'a"b' }],
    ['a backslash', { scope: 'a\\b' }],
    ['non-ASCII', { scope: 'forum:écrire' }],
    ['a scope of 257 characters', { scope: 'x'.repeat(257) }],
    [
      'more than MAX_SCOPES scopes',
      { scope: Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `s${i}`).join(' ') },
    ],
    [
      'a list longer than MAX_SCOPES',
      { scp: Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `s${i}`) },
    ],
    ['a string longer than its cap', { scope: ' '.repeat(MAX_SCOPES * 257 + 1) }],
  ]
  for (const [name, claims] of rows) {
    t.throws(
      () => derive(claims),
      { name: 'TokenError', code: 'KH_TOKEN_SCOPE', statusCode: 401 },
      name,
    )
  }
  t.throws(() => scopesOf({ scope: 'a', scp: 'b' }), {
    cause: { message: 'The access token carries both scope and scp' },
  })
  t.throws(() => scopesOf({ scp: 'a"b' }), {
    cause: { message: 'scp is not a list of scope tokens' },
  })
})

t.test('own properties only: an inherited scope grants nothing', async (t) => {
  const payload = Object.create({ scope: 'forum:write' }) as Record<string, unknown>
  t.same(scopesOf(payload), [])
})

t.test('the schema reads a string into its list', async (t) => {
  t.same(scopeClaimSchema.parse('a b'), ['a', 'b'])
  t.same(scopeClaimSchema.parse(['a']), ['a'])
  t.notOk(scopeClaimSchema.safeParse('a\tb').success)
})
