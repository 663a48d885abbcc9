import t from 'tap'
import { z } from 'zod'
import {
  deriveCapability,
  resolveCapabilityOptions,
  type CapabilityOptions,
} from '../../src/capability/derive.ts'
import { TokenError } from '../../src/errors.ts'
import { permissionsSchema } from '../../src/capability/claim-schema.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const B = '1c7b4d1f-7e1c-4b54-8a6f-3a2dac806b12'
const C = '2d8c5e2a-8f2d-4c65-9b7a-4b3ebd917c23'
const defaults = resolveCapabilityOptions()

function derive(payload: Record<string, unknown>, options = defaults) {
  return deriveCapability(payload, options)
}

const member = (group: unknown) => ({ group, role: 'member' })

t.test('derives groups per role along the hierarchy', async (t) => {
  const { capability, ignored } = derive({
    sub: 'alice',
    exp: 2_000_000_000,
    permissions: [
      { group: A, role: 'member' },
      { group: B, role: 'moderator' },
      { group: C, role: 'member' },
    ],
  })
  t.equal(ignored, 0)
  t.equal(capability.subject, 'alice')
  t.equal(capability.expiresAt, 2_000_000_000)
  t.equal(capability.isAdmin, false)
  t.equal(capability.groupIdType, 'uuid')
  t.same(capability.roles, ['member', 'moderator', 'admin'])
  t.same(capability.groups('member'), [A, B, C], 'a moderator is also a member; first-seen order')
  t.same(capability.groups('moderator'), [B])
  t.same(capability.groups('admin'), [])
  t.same(capability.binding('moderator'), { groups: [B], isAdmin: false })
})

t.test('an admin entry in any group makes the holder admin everywhere', async (t) => {
  const { capability } = derive({ sub: 'root', permissions: [{ group: C, role: 'admin' }] })
  t.equal(capability.isAdmin, true)
  t.same(capability.groups('member'), [C], 'groups stay what the claim lists')
  t.same(capability.binding('member'), { groups: [C], isAdmin: true })
  t.ok(capability.has('moderator', A), 'admin passes in a group it has no entry for')
})

t.test('an absent permissions claim is a holder with no groups', async (t) => {
  for (const payload of [{ sub: 'bob' }, { sub: 'bob', permissions: undefined }]) {
    const { capability, ignored } = derive(payload)
    t.equal(ignored, 0)
    t.equal(capability.isAdmin, false)
    t.same(capability.groups('member'), [])
    t.notOk(capability.has('member'))
  }
  t.same(derive({ sub: 'bob', permissions: [] }).capability.groups('member'), [])
})

t.test('unknown and case-variant roles grant nothing and are counted', async (t) => {
  const { capability, ignored } = derive({
    sub: 'eve',
    permissions: [
      { group: A, role: 'Admin' },
      { group: A, role: 'ADMIN' },
      { group: A, role: 'admin ' },
      { group: B, role: 'owner' },
      { group: B, role: '__proto__' },
      { group: B, role: 'toString' },
      { group: B, role: '' },
      { group: C, role: 'member' },
    ],
  })
  t.equal(ignored, 7)
  t.equal(capability.isAdmin, false)
  t.same(capability.groups('member'), [C])
})

t.test('duplicates collapse into one group at its highest role', async (t) => {
  const { capability } = derive({
    sub: 'dup',
    permissions: [
      { group: A, role: 'moderator' },
      { group: A.toUpperCase(), role: 'member' },
      { group: A, role: 'member' },
      { group: B, role: 'member' },
      { group: B, role: 'moderator' },
    ],
  })
  t.same(capability.groups('member'), [A, B])
  t.same(capability.groups('moderator'), [A, B])
  const ints = derive(
    { sub: 'dup', permissions: [member(7), member('7'), member(-0), member('0')] },
    resolveCapabilityOptions({ groupIdType: 'bigint' }),
  ).capability
  t.same(ints.groups('member'), ['7', '0'], '7 and "7" are one group, as are -0 and "0"')
})

t.test('__proto__ and constructor keys have no effect', async (t) => {
  const payload = JSON.parse(
    `{"sub":"p","__proto__":{"isAdmin":true,"permissions":[{"group":"${A}","role":"admin"}]},` +
      `"permissions":[{"group":"${A}","role":"member","__proto__":{"role":"admin"},` +
      `"constructor":{"prototype":{"isAdmin":true}}}]}`,
  ) as Record<string, unknown>
  const { capability } = derive(payload)
  t.equal(capability.isAdmin, false)
  t.same(capability.groups('member'), [A])
  t.same(capability.groups('moderator'), [])
  const inherited = JSON.parse(
    `{"__proto__":{"sub":"mallory","permissions":[{"group":"${A}","role":"admin"}]}}`,
  ) as Record<string, unknown>
  t.throws(() => derive(inherited), { code: 'KH_TOKEN_CLAIM' }, 'inherited claims are not read')
  const noSub = Object.create({ sub: 'mallory' }) as Record<string, unknown>
  t.throws(() => derive(noSub), { code: 'KH_TOKEN_CLAIM' }, 'nor from a prototype chain')
  const onlyInherited = Object.assign(Object.create({ permissions: [member(A)] }), { sub: 's' })
  t.same(derive(onlyInherited).capability.groups('member'), [], 'permissions are own claims only')
  t.equal(({} as Record<string, unknown>).isAdmin, undefined, 'Object.prototype untouched')
  t.equal(({} as Record<string, unknown>).role, undefined)
})

const badPermissions: [string, unknown][] = [
  ['an object instead of a list', member(A)],
  ['a string', 'admin'],
  ['a number', 1],
  ['null', null],
  ['an entry that is not an object', [A]],
  ['a nested list', [[member(A)]]],
  ['a missing group', [{ role: 'member' }]],
  ['a missing role', [{ group: A }]],
  ['a non-string role', [{ group: A, role: 1 }]],
  ['a null role', [{ group: A, role: null }]],
  ['a group that is not a UUID', [member('abc')]],
  ['a group list in one string', [member(`${A},${B}`)]],
  ['"1,3"', [member('1,3')]],
  ['SQL in a group', [member('1);--')]],
  ['a NUL byte in a group', [member(`${A}\0`)]],
  ['a braced UUID', [member(`{${A}}`)]],
  ['a UUID without dashes', [member(A.replaceAll('-', ''))]],
  ['a boolean group', [member(true)]],
  ['a nested array group', [member([A])]],
  ['a number group under uuid', [member(1)]],
  ['a bad group behind an unknown role', [member(A), { group: 'x', role: 'owner' }]],
  ['a bad entry after good ones', [member(A), member(B), member('1,3')]],
]

t.test('malformed permissions make the token invalid (401 KH_TOKEN_PERMISSIONS)', async (t) => {
  for (const [name, permissions] of badPermissions) {
    t.throws(
      () => derive({ sub: 'm', permissions }),
      { name: 'TokenError', code: 'KH_TOKEN_PERMISSIONS', statusCode: 401 },
      name,
    )
  }
})

t.test("a malformed claim is refused with the schema's issues, else the entry check", async (t) => {
  const schema = permissionsSchema(defaults.maxPermissions)
  let bySchema = 0
  for (const [name, permissions] of badPermissions) {
    const error = t.throws(() => derive({ sub: 'm', permissions })) as TokenError
    const parsed = schema.safeParse(permissions)
    if (parsed.success) {
      t.match(error.cause, { message: /^permissions\[\d\]\.group is not a uuid group ID$/ }, name)
    } else {
      bySchema++
      t.type(error.cause, z.ZodError, name)
      t.same((error.cause as z.ZodError).issues, parsed.error.issues, name)
    }
  }
  t.equal(bySchema, 12, 'the rows the schema refuses')
})

t.test('bigint claims refuse unsafe, negative, fractional and non-decimal IDs', async (t) => {
  const bigint = resolveCapabilityOptions({ groupIdType: 'bigint' })
  for (const group of [2 ** 53, 2 ** 53 + 1, 1e21, -1, 1.5, NaN, '1,3', '1);--', '1\0', '-1']) {
    t.throws(
      () => derive({ sub: 'm', permissions: [member(group)] }, bigint),
      { code: 'KH_TOKEN_PERMISSIONS', statusCode: 401 },
      String(group),
    )
  }
  const ok = derive({ sub: 'm', permissions: [member('9223372036854775807'), member(42)] }, bigint)
  t.same(ok.capability.groups('member'), ['9223372036854775807', '42'])
})

t.test('more than maxPermissions entries is refused', async (t) => {
  const two = resolveCapabilityOptions({ maxPermissions: 2 })
  t.same(
    derive({ sub: 'm', permissions: [member(A), member(B)] }, two).capability.groups('member'),
    [A, B],
  )
  t.throws(() => derive({ sub: 'm', permissions: [A, B, C].map(member) }, two), {
    code: 'KH_TOKEN_PERMISSIONS',
  })
  const over = Array.from({ length: 10_001 }, () => member(A))
  t.throws(() => derive({ sub: 'm', permissions: over }), { code: 'KH_TOKEN_PERMISSIONS' })
  const atCap = Array.from({ length: 10_000 }, () => member(A))
  t.same(derive({ sub: 'm', permissions: atCap }).capability.groups('member'), [A])
})

t.test('the error says which entry failed, never its value', async (t) => {
  const secretish = 'ffffffff-ffff-ffff-ffff-fffffffffffg'
  const error = t.throws(() => derive({ sub: 'm', permissions: [member(A), member(secretish)] }))
  t.type(error, TokenError)
  const text = `${(error as Error).message} ${String((error as Error).cause)}`
  t.match(text, /permissions\[1\]\.group is not a uuid group ID/)
  t.notMatch(text, secretish)
  t.notMatch(JSON.stringify(error), secretish, 'nor its JSON body')
  const zodError = t.throws(() =>
    derive({ sub: 'm', permissions: [{ group: 'leak-me', role: 5 }] }),
  )
  t.notMatch(`${(zodError as Error).message} ${String((zodError as Error).cause)}`, 'leak-me')
  t.equal(Object.keys(zodError as object).includes('cause'), false, 'cause is not enumerable')
})

t.test('the subject must be a non-empty string or a non-negative safe integer', async (t) => {
  const bad: [string, Record<string, unknown>][] = [
    ['absent', { permissions: [] }],
    ['undefined', { sub: undefined }],
    ['null', { sub: null }],
    ['empty', { sub: '' }],
    ['an object', { sub: { id: 1 } }],
    ['a list', { sub: ['a'] }],
    ['a boolean', { sub: true }],
    ['an unsafe integer', { sub: 2 ** 53 + 2 }],
    ['a negative integer', { sub: -1 }],
    ['a fraction', { sub: 1.5 }],
    ['NaN', { sub: NaN }],
    ['a NUL byte', { sub: 'a\0b' }],
    ['a line break', { sub: 'alice\nadmin' }],
    ['too long', { sub: 'x'.repeat(257) }],
  ]
  for (const [name, payload] of bad) {
    t.throws(
      () => derive(payload),
      { name: 'TokenError', code: 'KH_TOKEN_CLAIM', statusCode: 401 },
      name,
    )
  }
  t.equal(derive({ sub: 42 }).capability.subject, '42')
  t.equal(derive({ sub: 0 }).capability.subject, '0')
  t.equal(derive({ sub: 'x'.repeat(256) }).capability.subject.length, 256)
  t.equal(
    derive({ sub: 'auth0|5f7c8ec7c33c6c004bbafe82' }).capability.subject,
    'auth0|5f7c8ec7c33c6c004bbafe82',
  )
})

t.test('subject and permissions claims are configurable', async (t) => {
  const options: CapabilityOptions = {
    subjectClaim: 'id',
    claim: 'https://example.com/permissions',
  }
  const resolved = resolveCapabilityOptions(options)
  const { capability } = derive(
    {
      id: 'u-7',
      sub: 'ignored',
      permissions: [{ group: B, role: 'admin' }],
      'https://example.com/permissions': [member(A)],
    },
    resolved,
  )
  t.equal(capability.subject, 'u-7')
  t.same(capability.groups('member'), [A])
  t.equal(capability.isAdmin, false, 'the default claim is not read')
  t.throws(() => derive({ sub: 'only-sub' }, resolved), { code: 'KH_TOKEN_CLAIM' })
})

t.test('expiresAt is exp when it is a finite number', async (t) => {
  t.equal(derive({ sub: 's', exp: 1_700_000_000 }).capability.expiresAt, 1_700_000_000)
  for (const exp of ['1700000000', null, NaN, Infinity, undefined]) {
    t.equal(derive({ sub: 's', exp }).capability.expiresAt, undefined, String(exp))
  }
})

t.test('custom hierarchy and admin role', async (t) => {
  const options = resolveCapabilityOptions({
    roles: ['reader', 'writer', 'owner', 'root'],
    adminRole: 'owner',
  })
  const custom = (role: string) =>
    derive({ sub: 'c', permissions: [{ group: A, role }] }, options).capability
  t.same(custom('writer').groups('reader'), [A])
  t.same(custom('writer').groups('owner'), [])
  t.equal(custom('writer').isAdmin, false)
  t.equal(custom('owner').isAdmin, true, 'the admin role')
  t.equal(custom('root').isAdmin, true, 'a role above the admin role')
  t.same(custom('root').roles, ['reader', 'writer', 'owner', 'root'])
  const { ignored } = derive({ sub: 'c', permissions: [{ group: A, role: 'member' }] }, options)
  t.equal(ignored, 1, 'the default role names mean nothing in a custom hierarchy')
  t.throws(() => custom('reader').groups('member'), { code: 'KH_INVALID_OPTIONS' })
  const lowestIsAdmin = resolveCapabilityOptions({ roles: ['staff'], adminRole: 'staff' })
  t.equal(
    derive({ sub: 'c', permissions: [{ group: A, role: 'staff' }] }, lowestIsAdmin).capability
      .isAdmin,
    true,
  )
})

t.test('every group-ID type derives canonical groups', async (t) => {
  const cases: [CapabilityOptions['groupIdType'], unknown[], string[]][] = [
    ['uuid', [A.toUpperCase(), B], [A, B]],
    ['bigint', ['9223372036854775807', 0, 12], ['9223372036854775807', '0', '12']],
    ['integer', [2147483647, '5'], ['2147483647', '5']],
    ['text', ['team-a', 'Team-A', 'org:1.b_c'], ['team-a', 'Team-A', 'org:1.b_c']],
  ]
  for (const [groupIdType, groups, canonical] of cases) {
    const options = resolveCapabilityOptions({ groupIdType })
    const { capability } = derive({ sub: 's', permissions: groups.map(member) }, options)
    t.same(capability.groups('member'), canonical, `${groupIdType}`)
    t.equal(capability.groupIdType, groupIdType)
    t.throws(
      () => derive({ sub: 's', permissions: [member('1);--')] }, options),
      { code: 'KH_TOKEN_PERMISSIONS' },
      `${groupIdType} refuses SQL`,
    )
  }
})

t.test('derivation is pure: the payload is not changed and calls are independent', async (t) => {
  const payload = Object.freeze({
    sub: 'pure',
    permissions: Object.freeze([Object.freeze(member(A.toUpperCase()))]),
  })
  const first = derive(payload).capability
  const second = derive(payload).capability
  t.not(first, second)
  t.same(first.groups('member'), second.groups('member'))
  t.equal(payload.permissions[0]?.group, A.toUpperCase())
})

t.test('a polluted Object.prototype cannot supply a role or a group', async (t) => {
  const A2 = '3e9d6f3b-9a3e-4d76-8c8b-5c4fce028d34'
  for (const [key, value] of [
    ['role', 'admin'],
    ['group', A2],
  ] as const) {
    Object.defineProperty(Object.prototype, key, { value, configurable: true, writable: true })
    try {
      const entry = key === 'role' ? { group: A } : { role: 'admin' }
      t.throws(
        () => derive({ sub: 'm', permissions: [entry] }),
        { code: 'KH_TOKEN_PERMISSIONS' },
        `an inherited ${key}`,
      )
    } finally {
      delete (Object.prototype as Record<string, unknown>)[key]
    }
  }
  t.same(derive({ sub: 'm', permissions: [member(A)] }).capability.groups('member'), [A])
})
