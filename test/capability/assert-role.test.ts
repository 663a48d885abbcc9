import t from 'tap'
import { assertRoleKnown, assertRole, assertRoleInGroup } from '../../src/capability/assert-role.ts'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'
import { Forbidden, TokenError } from '../../src/errors.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const B = '1c7b4d1f-7e1c-4b54-8a6f-3a2dac806b12'
const options = resolveCapabilityOptions()
const holder = (permissions: unknown[]) =>
  deriveCapability({ sub: 'u', permissions }, options).capability
const moderatorOfA = holder([{ group: A, role: 'moderator' }])
const memberOfA = holder([{ group: A, role: 'member' }])
const adminOfB = holder([{ group: B, role: 'admin' }])

t.test('passes when the holder has the role (or higher), anywhere or in the group', async (t) => {
  t.doesNotThrow(() => assertRole(moderatorOfA, 'member'))
  t.doesNotThrow(() => assertRole(moderatorOfA, 'moderator'))
  t.doesNotThrow(() => assertRole(moderatorOfA, 'moderator', A))
  t.doesNotThrow(() => assertRole(moderatorOfA, 'member', A.toUpperCase()))
  t.doesNotThrow(() => assertRoleInGroup(moderatorOfA, 'moderator', A))
  t.doesNotThrow(() => assertRole(adminOfB, 'admin'))
  t.doesNotThrow(() => assertRole(adminOfB, 'admin', A), 'admin everywhere')
  t.doesNotThrow(() => assertRoleInGroup(adminOfB, 'moderator', A))
})

t.test('refuses with 403 insufficient_scope otherwise', async (t) => {
  const refusals: [string, () => void][] = [
    ['a member needs moderator', () => assertRole(memberOfA, 'moderator')],
    ['a member of A is not one of B', () => assertRole(memberOfA, 'member', B)],
    ['in-group form', () => assertRoleInGroup(moderatorOfA, 'moderator', B)],
    ['no groups at all', () => assertRole(holder([]), 'member')],
    ['a moderator is not admin', () => assertRole(moderatorOfA, 'admin')],
    ['case-variant role entry', () => assertRole(holder([{ group: A, role: 'Admin' }]), 'member')],
  ]
  for (const [name, refusal] of refusals) {
    t.throws(refusal, { name: 'Forbidden', code: 'KH_FORBIDDEN', statusCode: 403 }, name)
  }
  const error = t.throws(() => assertRole(memberOfA, 'admin', undefined, 'forum'))
  t.type(error, Forbidden)
  t.match(
    (error as Forbidden).headers['www-authenticate'],
    /^Bearer realm="forum", error="insufficient_scope"/,
  )
  const inGroup = t.throws(() => assertRoleInGroup(memberOfA, 'admin', A, 'forum'))
  t.equal((inGroup as Forbidden).realm, 'forum')
  t.equal((t.throws(() => assertRole(memberOfA, 'admin')) as Forbidden).realm, 'keyhole')
})

t.test('no capability is 401 KH_TOKEN_MISSING', async (t) => {
  for (const missing of [undefined, null]) {
    t.throws(() => assertRole(missing, 'member'), { code: 'KH_TOKEN_MISSING', statusCode: 401 })
    t.throws(() => assertRole(missing, 'member', A), { code: 'KH_TOKEN_MISSING' })
    t.throws(() => assertRoleInGroup(missing, 'member', A, 'forum'), {
      code: 'KH_TOKEN_MISSING',
      realm: 'forum',
    })
  }
  const error = t.throws(() => assertRole(undefined, 'member', undefined, 'forum'))
  t.type(error, TokenError)
  t.equal((error as TokenError).realm, 'forum')
  t.equal((error as TokenError).headers['www-authenticate'], 'Bearer realm="forum"')
})

t.test('a malformed group is 400 and never reaches SQL; a missing one fails closed', async (t) => {
  for (const bad of ['1);--', `${A},${B}`, `{${A}}`, 5, '', null, [A], { id: A }]) {
    t.throws(
      () => assertRole(memberOfA, 'member', bad),
      { name: 'BadRequest', code: 'KH_BAD_REQUEST', statusCode: 400 },
      JSON.stringify(bad),
    )
    t.throws(() => assertRoleInGroup(adminOfB, 'member', bad), { code: 'KH_BAD_REQUEST' })
  }
  t.throws(
    () => assertRoleInGroup(moderatorOfA, 'member', undefined),
    { code: 'KH_BAD_REQUEST' },
    'a group resolver that returns nothing never widens to "anywhere"',
  )
})

t.test('an unknown role name is API misuse', async (t) => {
  t.throws(() => assertRoleKnown(options.hierarchy.roles, 'moderater'), {
    code: 'KH_INVALID_OPTIONS',
    message: /moderater/,
  })
  t.doesNotThrow(() => assertRoleKnown(options.hierarchy.roles, 'moderator'))
  t.throws(() => assertRole(memberOfA, 'owner'), { code: 'KH_INVALID_OPTIONS' })
  t.throws(
    () => assertRole(adminOfB, 'Admin', A),
    { code: 'KH_INVALID_OPTIONS' },
    'even for admins',
  )
})
