/**
 * A capability without a token: `{ subject, groups, admin }` validated as strictly as a token's
 * permissions, frozen like a derived capability, and equal to the one the same token derives.
 */
import t from 'tap'
import { defineCapability } from '../../src/capability/define-capability.ts'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const B = '1c7b4d1f-7e1c-4b54-8a6f-3a2dac806b12'

const view = (c: ReturnType<typeof defineCapability>) => ({
  subject: c.subject,
  isAdmin: c.isAdmin,
  roles: c.roles,
  groupIdType: c.groupIdType,
  expiresAt: c.expiresAt,
  groups: Object.fromEntries(c.roles.map((r) => [r, c.groups(r)])),
})

t.test('the same capability as a token with the same permissions', async (t) => {
  const defined = defineCapability({
    subject: 'alice',
    groups: { member: [A, B.toUpperCase()], moderator: [B] },
  })
  const derived = deriveCapability(
    {
      sub: 'alice',
      permissions: [
        { group: A, role: 'member' },
        { group: B, role: 'member' },
        { group: B, role: 'moderator' },
      ],
    },
    resolveCapabilityOptions(),
  ).capability
  t.same(view(defined), view(derived))
  t.same(defined.groups('member'), [A, B], 'canonical, deduplicated')
  t.ok(Object.isFrozen(defined))
  t.equal(defined.has('moderator', A), false)
})

t.test('admin: the flag, or the admin role in any group', async (t) => {
  t.equal(defineCapability({ subject: 'root', admin: true }).isAdmin, true)
  t.equal(defineCapability({ subject: 'root', groups: { admin: [A] } }).isAdmin, true)
  t.equal(defineCapability({ subject: 'w', groups: { admin: [] }, admin: false }).isAdmin, false)
  t.equal(defineCapability({ subject: 'w' }).isAdmin, false)
  t.same(defineCapability({ subject: 'w' }).groups('member'), [])
})

t.test('the configured hierarchy and group-ID type', async (t) => {
  const options = { roles: ['reader', 'writer', 'owner'], groupIdType: 'bigint' as const }
  const c = defineCapability({ subject: 'w', groups: { writer: [7, '8'] } }, options)
  t.same(c.groups('reader'), ['7', '8'])
  t.same(c.groups('owner'), [])
  t.throws(() => defineCapability({ subject: 'w' }, { roles: [] }), { code: 'KH_INVALID_OPTIONS' })
})

t.test('bad specs: KH_INVALID_OPTIONS naming the field', async (t) => {
  const bad: [string, unknown, RegExp][] = [
    ['not an object', null, /^Invalid capability spec:/],
    ['no subject', {}, /^Invalid capability subject:/],
    ['an empty subject', { subject: '' }, /^Invalid capability subject:/],
    ['a numeric subject', { subject: 7 }, /^Invalid capability subject:/],
    [
      'a control character',
      { subject: 'a\u0000b' },
      /subject: must not contain control characters/,
    ],
    ['a long subject', { subject: 'x'.repeat(257) }, /^Invalid capability subject:/],
    ['an unknown key', { subject: 'a', group: {} }, /^Invalid capability group:/],
    ['groups not an object', { subject: 'a', groups: [A] }, /^Invalid capability groups:/],
    [
      'a role with one ID',
      { subject: 'a', groups: { member: A } },
      /^Invalid capability groups\.member:/,
    ],
    [
      'an unknown role',
      { subject: 'a', groups: { Admin: [A] } },
      /groups\.Admin: not a role of the hierarchy/,
    ],
    [
      '__proto__ as a role',
      JSON.parse(`{"subject":"a","groups":{"__proto__":["${A}"]}}`),
      /groups\.__proto__: not a role/,
    ],
    [
      'a group of another type',
      { subject: 'a', groups: { member: ['1);--'] } },
      /groups\.member\[0\]: not a uuid group ID/,
    ],
    [
      'two IDs in one',
      { subject: 'a', groups: { member: [A, `${A},${B}`] } },
      /groups\.member\[1\]/,
    ],
    ['admin not a boolean', { subject: 'a', admin: 'yes' }, /^Invalid capability admin:/],
    [
      'admin: false beside the admin role',
      { subject: 'a', groups: { admin: [A] }, admin: false },
      /admin: false, but groups\.admin/,
    ],
  ]
  for (const [name, spec, message] of bad) {
    t.throws(
      () => defineCapability(spec as Parameters<typeof defineCapability>[0]),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
  t.throws(
    () =>
      defineCapability(
        { subject: 'a', groups: { member: [1, 2], moderator: [3] } },
        { groupIdType: 'integer', maxPermissions: 2 },
      ),
    { code: 'KH_INVALID_OPTIONS', message: /groups: more than 2 group IDs/ },
    'more IDs than maxPermissions',
  )
  t.throws(
    () =>
      defineCapability({ subject: 'a', groups: { member: [2 ** 53] } }, { groupIdType: 'bigint' }),
    { message: /not a bigint group ID/ },
    'a number above 2^53',
  )
})
