import t from 'tap'
import fc from 'fast-check'
import {
  deriveCapability,
  resolveCapabilityOptions,
  type CapabilityOptions,
} from '../../src/capability/derive.ts'
import { ConfigurationError, TokenError } from '../../src/errors.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const B = '1c7b4d1f-7e1c-4b54-8a6f-3a2dac806b12'
const C = '2d8c5e2a-8f2d-4c65-9b7a-4b3ebd917c23'
const defaults = resolveCapabilityOptions()

function derive(payload: Record<string, unknown>, options = defaults) {
  return deriveCapability(payload, options)
}

t.test('derives groups per role along the hierarchy', async (t) => {
  const { capability, ignored } = derive({
    sub: 'alice',
    exp: 2_000_000_000,
    permissions: [
      { group: A, role: 'member' },
      { group: B, role: 'moderator' },
    ],
  })
  t.equal(ignored, 0)
  t.equal(capability.subject, 'alice')
  t.equal(capability.expiresAt, 2_000_000_000)
  t.equal(capability.isAdmin, false)
  t.equal(capability.groupIdType, 'uuid')
  t.same(capability.roles, ['member', 'moderator', 'admin'])
  t.same(capability.groups('member'), [A, B], 'a moderator is also a member')
  t.same(capability.groups('moderator'), [B])
  t.same(capability.groups('admin'), [])
  t.same(capability.binding('member'), { groups: [A, B], isAdmin: false })
  t.equal(capability.binding('member'), capability.binding('member'), 'the same frozen binding')
  t.ok(capability.has('member'))
  t.ok(capability.has('member', B))
  t.ok(capability.has('moderator', B.toUpperCase()), 'group arguments are canonicalised')
  t.notOk(capability.has('moderator', A))
  t.notOk(capability.has('moderator', C))
  t.notOk(capability.has('member', 'not-a-uuid'))
  t.notOk(capability.has('admin'))
})

t.test('an admin entry in any group makes the holder admin everywhere', async (t) => {
  const { capability } = derive({ sub: 'root', permissions: [{ group: C, role: 'admin' }] })
  t.equal(capability.isAdmin, true)
  t.ok(capability.has('moderator', A), 'admin passes in a group it has no entry for')
  t.ok(capability.has('admin'))
  t.same(capability.binding('member'), { groups: [C], isAdmin: true })
})

t.test('an absent permissions claim is a holder with no groups', async (t) => {
  const { capability } = derive({ sub: 'bob' })
  t.same(capability.groups('member'), [])
  t.notOk(capability.has('member'))
  t.equal(capability.expiresAt, undefined)
})

t.test('unknown and case-variant roles grant nothing and are counted', async (t) => {
  const { capability, ignored } = derive({
    sub: 'eve',
    permissions: [
      { group: A, role: 'Admin' },
      { group: A, role: 'ADMIN' },
      { group: B, role: 'owner' },
      { group: C, role: 'member' },
    ],
  })
  t.equal(ignored, 3)
  t.equal(capability.isAdmin, false)
  t.same(capability.groups('member'), [C])
})

t.test('duplicates are deduplicated and UUIDs canonicalised', async (t) => {
  const { capability } = derive({
    sub: 'dup',
    permissions: [
      { group: A, role: 'member' },
      { group: A.toUpperCase(), role: 'member' },
      { group: A, role: 'moderator' },
    ],
  })
  t.same(capability.groups('member'), [A])
  t.same(capability.groups('moderator'), [A])
})

t.test('__proto__ and constructor keys have no effect', async (t) => {
  const payload = JSON.parse(
    `{"sub":"p","__proto__":{"isAdmin":true},"permissions":[{"group":"${A}","role":"member","__proto__":{"role":"admin"},"constructor":{"prototype":{"isAdmin":true}}}]}`,
  ) as Record<string, unknown>
  const { capability } = derive(payload)
  t.equal(capability.isAdmin, false)
  t.same(capability.groups('moderator'), [])
  t.equal(({} as Record<string, unknown>).isAdmin, undefined, 'Object.prototype untouched')
})

t.test('the capability is frozen', async (t) => {
  const { capability } = derive({ sub: 'f', permissions: [{ group: A, role: 'member' }] })
  t.ok(Object.isFrozen(capability))
  t.ok(Object.isFrozen(capability.groups('member')))
  t.ok(Object.isFrozen(capability.binding('member')))
  t.throws(() => {
    ;(capability as { isAdmin: boolean }).isAdmin = true
  }, TypeError)
  t.throws(() => (capability.groups('member') as string[]).push(B), TypeError)
  t.same(capability.groups('member'), [A])
})

t.test('a role outside the hierarchy is API misuse, never a grant', async (t) => {
  const { capability } = derive({ sub: 'x', permissions: [{ group: A, role: 'admin' }] })
  for (const call of [
    () => capability.groups('moderater'),
    () => capability.binding('Admin'),
    () => capability.has('owner'),
  ]) {
    t.throws(call, { code: 'KH_INVALID_OPTIONS' })
  }
})

const badPermissions: [string, unknown][] = [
  ['not a list', { group: A, role: 'member' }],
  ['a string', 'admin'],
  ['null', null],
  ['an entry that is not an object', [A]],
  ['a missing group', [{ role: 'member' }]],
  ['a missing role', [{ group: A }]],
  ['a non-string role', [{ group: A, role: 1 }]],
  ['a group that is not a UUID', [{ group: 'abc', role: 'member' }]],
  ['a group list in one string', [{ group: `${A},${B}`, role: 'member' }]],
  ['SQL in a group', [{ group: '1);--', role: 'member' }]],
  ['a NUL byte in a group', [{ group: `${A}\0`, role: 'member' }]],
  ['a braced UUID', [{ group: `{${A}}`, role: 'member' }]],
  ['a UUID without dashes', [{ group: A.replaceAll('-', ''), role: 'member' }]],
  ['a boolean group', [{ group: true, role: 'member' }]],
  ['a nested array group', [{ group: [A], role: 'member' }]],
  ['a number group under uuid', [{ group: 1, role: 'member' }]],
]

t.test('malformed permissions make the token invalid (401 KH_TOKEN_PERMISSIONS)', async (t) => {
  for (const [name, permissions] of badPermissions) {
    t.throws(
      () => derive({ sub: 'm', permissions }),
      { code: 'KH_TOKEN_PERMISSIONS', statusCode: 401 },
      name,
    )
  }
  const tooMany = resolveCapabilityOptions({ maxPermissions: 2 })
  const three = [A, B, C].map((group) => ({ group, role: 'member' }))
  t.throws(() => derive({ sub: 'm', permissions: three }, tooMany), {
    code: 'KH_TOKEN_PERMISSIONS',
  })
  t.throws(() => derive({ sub: 'm', permissions: 'x' }), TokenError)
})

t.test('the subject must be a non-empty string or a safe integer', async (t) => {
  const bad: [string, unknown][] = [
    ['missing', undefined],
    ['empty', ''],
    ['an object', { id: 1 }],
    ['an unsafe integer', 2 ** 53 + 2],
    ['a fraction', 1.5],
    ['a NUL byte', 'a\0b'],
    ['too long', 'x'.repeat(257)],
  ]
  for (const [name, sub] of bad) {
    t.throws(
      () => derive({ sub, permissions: [] }),
      { code: 'KH_TOKEN_CLAIM', statusCode: 401 },
      name,
    )
  }
  t.equal(derive({ sub: 42 }).capability.subject, '42')
  const byId = resolveCapabilityOptions({ subjectClaim: 'id' })
  t.equal(derive({ id: 'u-7', sub: 'ignored' }, byId).capability.subject, 'u-7')
})

t.test('group-ID types', async (t) => {
  const cases: [CapabilityOptions['groupIdType'], unknown[], unknown[], string[]][] = [
    [
      'bigint',
      ['9223372036854775807', 0, 7, '12', Number.MAX_SAFE_INTEGER],
      [2 ** 53 + 1, 1e21, -1, 1.5, '9223372036854775808', '-1', '01', '1,3', '1);--', NaN, '1\0'],
      ['9223372036854775807', '0', '7', '12', String(Number.MAX_SAFE_INTEGER)],
    ],
    ['integer', [2147483647, '5'], [2147483648, '2147483648', -5, 0.5, '1e3'], ['2147483647', '5']],
    [
      'text',
      ['team-a', 'org:1.b_c'],
      ['a b', '', "o'neil", 'x'.repeat(129), 5],
      ['team-a', 'org:1.b_c'],
    ],
  ]
  for (const [groupIdType, good, bad, canonical] of cases) {
    const options = resolveCapabilityOptions({ groupIdType })
    const { capability } = derive(
      { sub: 's', permissions: good.map((group) => ({ group, role: 'member' })) },
      options,
    )
    t.same(capability.groups('member'), canonical, `${groupIdType} accepts and canonicalises`)
    t.equal(capability.groupIdType, groupIdType)
    for (const group of bad) {
      t.throws(
        () => derive({ sub: 's', permissions: [{ group, role: 'member' }] }, options),
        { code: 'KH_TOKEN_PERMISSIONS' },
        `${groupIdType} refuses ${String(group).slice(0, 20)}`,
      )
    }
  }
})

t.test('custom hierarchy and admin role', async (t) => {
  const options = resolveCapabilityOptions({
    roles: ['reader', 'writer', 'owner', 'root'],
    adminRole: 'owner',
    claim: 'perms',
  })
  const { capability } = derive({
    sub: 'c',
    perms: [
      { group: A, role: 'writer' },
      { group: B, role: 'reader' },
    ],
  })
  t.same(capability.groups('member'), [], 'default claim name is not read')
  const custom = derive({ sub: 'c', perms: [{ group: A, role: 'writer' }] }, options).capability
  t.same(custom.groups('reader'), [A])
  t.equal(custom.isAdmin, false)
  t.equal(
    derive({ sub: 'c', perms: [{ group: A, role: 'root' }] }, options).capability.isAdmin,
    true,
  )
  t.equal(
    derive({ sub: 'c', perms: [{ group: A, role: 'owner' }] }, options).capability.isAdmin,
    true,
  )
})

t.test('options are validated once, naming the option, and never mutated', async (t) => {
  const bad: [string, unknown, RegExp][] = [
    ['empty roles', { roles: [] }, /capability\.roles/],
    ['duplicate roles', { roles: ['a', 'a'] }, /unique/],
    ['a role with spaces', { roles: ['a b'] }, /capability\.roles/],
    ['adminRole not in roles', { adminRole: 'root' }, /capability\.adminRole/],
    ['bad groupIdType', { groupIdType: 'int' }, /capability\.groupIdType/],
    ['maxPermissions 0', { maxPermissions: 0 }, /capability\.maxPermissions/],
    ['maxPermissions fraction', { maxPermissions: 1.5 }, /capability\.maxPermissions/],
    ['unknown key', { rolez: ['a'] }, /rolez/],
    ['bad claim name', { claim: 'a b' }, /capability\.claim/],
  ]
  for (const [name, options, message] of bad) {
    t.throws(
      () => resolveCapabilityOptions(options as CapabilityOptions),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
  t.throws(() => resolveCapabilityOptions({ roles: [] }), ConfigurationError)
  const options = Object.freeze({ roles: Object.freeze(['a', 'b']), adminRole: 'b' })
  const resolved = resolveCapabilityOptions(options)
  t.same(options, { roles: ['a', 'b'], adminRole: 'b' })
  t.ok(Object.isFrozen(resolved))
  t.ok(Object.isFrozen(resolved.hierarchy.roles))
})

const uuids = fc.uuid().map((u) => u.toLowerCase())
const roleNames = fc.constantFrom('member', 'moderator', 'admin', 'Admin', 'owner')
const entries = fc.array(fc.record({ group: uuids, role: roleNames }), { maxLength: 30 })

t.test('properties of derivation', async (t) => {
  fc.assert(
    fc.property(entries, (permissions) => {
      const { capability } = derive({ sub: 'p', permissions })
      const claimed = new Set(permissions.map((p) => p.group))
      const [member, moderator, admin] = ['member', 'moderator', 'admin'].map(
        (r) => new Set(capability.groups(r)),
      ) as [Set<string>, Set<string>, Set<string>]
      // never grants a group absent from the claims
      for (const g of member) if (!claimed.has(g)) return false
      // monotone: member ⊇ moderator ⊇ admin
      for (const g of moderator) if (!member.has(g)) return false
      for (const g of admin) if (!moderator.has(g)) return false
      // admin ⇔ an admin entry
      if (capability.isAdmin !== permissions.some((p) => p.role === 'admin')) return false
      // has(role, g) ⇔ g ∈ groups(role) or admin
      for (const p of permissions) {
        for (const role of ['member', 'moderator', 'admin']) {
          const expected = capability.isAdmin || capability.groups(role).includes(p.group)
          if (capability.has(role, p.group) !== expected) return false
        }
      }
      // exactly the groups with that role or higher
      const rank = { member: 0, moderator: 1, admin: 2 } as Record<string, number>
      for (const [role, r] of Object.entries(rank)) {
        const expected = new Set(
          permissions.filter((p) => (rank[p.role] ?? -1) >= r).map((p) => p.group),
        )
        const got = capability.groups(role)
        if (got.length !== expected.size || !got.every((g) => expected.has(g))) return false
      }
      return true
    }),
    { numRuns: 300 },
  )
  t.pass('300 random claims hold every property')
})
