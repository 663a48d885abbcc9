import t from 'tap'
import { checkRole, assertRoleKnown } from '../../src/capability/require-role.ts'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'
import { Forbidden } from '../../src/errors.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const B = '1c7b4d1f-7e1c-4b54-8a6f-3a2dac806b12'
const options = resolveCapabilityOptions()
const holder = (permissions: unknown[]) =>
  deriveCapability({ sub: 'u', permissions }, options).capability

t.test('passes when the holder has the role (or higher), anywhere or in the group', async (t) => {
  const moderator = holder([{ group: A, role: 'moderator' }])
  t.doesNotThrow(() => checkRole(moderator, 'member'))
  t.doesNotThrow(() => checkRole(moderator, 'moderator', A))
  t.doesNotThrow(() => checkRole(moderator, 'member', A.toUpperCase()))
  const admin = holder([{ group: B, role: 'admin' }])
  t.doesNotThrow(() => checkRole(admin, 'admin', A), 'admin everywhere')
})

t.test('refuses with 403 insufficient_scope otherwise', async (t) => {
  const member = holder([{ group: A, role: 'member' }])
  t.throws(() => checkRole(member, 'moderator'), { code: 'KH_FORBIDDEN', statusCode: 403 })
  t.throws(() => checkRole(member, 'member', B), { code: 'KH_FORBIDDEN' })
  t.throws(() => checkRole(holder([]), 'member'), { code: 'KH_FORBIDDEN' })
  try {
    checkRole(member, 'admin', undefined, 'forum')
    t.fail('should refuse')
  } catch (error) {
    t.type(error, Forbidden)
    t.match(
      (error as Forbidden).headers['www-authenticate'],
      /^Bearer realm="forum", error="insufficient_scope"/,
    )
  }
})

t.test('no capability is 401; a malformed group is 400 and never reaches SQL', async (t) => {
  t.throws(() => checkRole(undefined, 'member'), { code: 'KH_TOKEN_MISSING', statusCode: 401 })
  t.throws(() => checkRole(null, 'member', undefined, 'forum'), {
    code: 'KH_TOKEN_MISSING',
    realm: 'forum',
  })
  const member = holder([{ group: A, role: 'member' }])
  for (const bad of ['1);--', `${A},${B}`, 5, '', null]) {
    t.throws(() => checkRole(member, 'member', bad), { code: 'KH_BAD_REQUEST', statusCode: 400 })
  }
})

t.test('an unknown role name is API misuse', async (t) => {
  t.throws(() => assertRoleKnown(['member'], 'moderater'), {
    code: 'KH_INVALID_OPTIONS',
    message: /moderater/,
  })
  t.doesNotThrow(() => assertRoleKnown(['member'], 'member'))
  const member = holder([{ group: A, role: 'member' }])
  t.throws(() => checkRole(member, 'owner'), { code: 'KH_INVALID_OPTIONS' })
})
