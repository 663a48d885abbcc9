/**
 * The decision behind requireScope: every scope named must be in the token; no capability is a
 * 401; a refusal is a 403 whose challenge names every scope required; the arguments are checked
 * when the guard is created.
 */
import t from 'tap'
import { assertScopes, requiredScopes } from '../../src/capability/assert-scope.ts'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'

const options = resolveCapabilityOptions()
const holder = (claims: Record<string, unknown>) =>
  deriveCapability({ sub: 'alice', ...claims }, options).capability

t.test('all scopes required, exact', async (t) => {
  const reader = holder({ scope: 'forum:read' })
  const writer = holder({ scp: ['forum:read', 'forum:write'] })
  const admin = holder({
    permissions: [{ group: 'a0000000-0000-4000-8000-000000000000', role: 'admin' }],
  })
  t.doesNotThrow(() => assertScopes(reader, ['forum:read']))
  t.doesNotThrow(() => assertScopes(writer, ['forum:read', 'forum:write']))
  const refusals: [string, Parameters<typeof assertScopes>[0], string[]][] = [
    ['one of two missing', reader, ['forum:read', 'forum:write']],
    ['case differs', writer, ['Forum:write']],
    ['an admin role grants no scope', admin, ['forum:read']],
  ]
  for (const [name, capability, scopes] of refusals) {
    t.throws(
      () => assertScopes(capability, scopes, 'forum'),
      {
        name: 'InsufficientScope',
        code: 'KH_INSUFFICIENT_SCOPE',
        statusCode: 403,
        realm: 'forum',
        scopes,
        headers: {
          'www-authenticate': `Bearer realm="forum", error="insufficient_scope", error_description="Insufficient scope", scope="${scopes.join(' ')}"`,
        },
      },
      name,
    )
  }
})

t.test('no capability → 401 KH_TOKEN_MISSING', async (t) => {
  for (const capability of [null, undefined]) {
    t.throws(() => assertScopes(capability, ['forum:read']), {
      code: 'KH_TOKEN_MISSING',
      realm: 'keyhole',
    })
  }
})

t.test('the arguments: one scope token each, at least one', async (t) => {
  t.same(requiredScopes(['forum:write']), ['forum:write'])
  t.same(requiredScopes(['b', 'a', 'b']), ['b', 'a'], 'deduplicated, in order')
  t.ok(Object.isFrozen(requiredScopes(['a'])))
  t.throws(() => requiredScopes([]), { code: 'KH_INVALID_OPTIONS', message: /at least one scope/ })
  const bad: [string, unknown][] = [
    ['two scopes in one string', 'forum:read forum:write'],
    ['empty', ''],
    ['not a string', 42],
    ['an array', ['forum:read']],
    ['a double quote', 'a"b'],
    ['a control character', 'a\u0007'],
    ['too long', 'x'.repeat(257)],
  ]
  for (const [name, scope] of bad) {
    t.throws(
      () => requiredScopes(['ok', scope]),
      { code: 'KH_INVALID_OPTIONS', message: /^requireScope: argument 2 must be one scope/ },
      name,
    )
  }
})
