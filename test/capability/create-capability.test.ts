import t from 'tap'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const B = '1c7b4d1f-7e1c-4b54-8a6f-3a2dac806b12'
const C = '2d8c5e2a-8f2d-4c65-9b7a-4b3ebd917c23'
const options = resolveCapabilityOptions()
const holder = (permissions: unknown[]) =>
  deriveCapability({ sub: 'u', permissions }, options).capability

t.test('has(role, group?): that role or a higher one, anywhere or in the group', async (t) => {
  const capability = holder([
    { group: A, role: 'member' },
    { group: B, role: 'moderator' },
  ])
  t.ok(capability.has('member'))
  t.ok(capability.has('moderator'))
  t.notOk(capability.has('admin'))
  t.ok(capability.has('member', A))
  t.ok(capability.has('member', B), 'a moderator is a member')
  t.ok(capability.has('moderator', B))
  t.ok(capability.has('moderator', B.toUpperCase()), 'the group argument is canonicalised')
  t.notOk(capability.has('moderator', A))
  t.notOk(capability.has('member', C))
  t.notOk(capability.has('member', 'not-a-uuid'))
  t.notOk(capability.has('member', `${A},${B}`))
  const admin = holder([{ group: C, role: 'admin' }])
  t.ok(admin.has('admin'))
  t.ok(admin.has('moderator', A))
  t.ok(admin.has('member', 'not-a-uuid'), 'admin everywhere, whatever the group')
  const nobody = holder([])
  t.notOk(nobody.has('member'))
  t.notOk(nobody.has('member', A))
})

t.test('groups and bindings are precomputed: the same frozen objects on each call', async (t) => {
  const capability = holder([{ group: A, role: 'moderator' }])
  t.equal(capability.groups('member'), capability.groups('member'))
  t.equal(capability.binding('member'), capability.binding('member'))
  t.equal(capability.binding('member').groups, capability.groups('member'))
  t.same(capability.binding('moderator'), { groups: [A], isAdmin: false })
})

t.test('the capability is frozen: nothing a handler does can widen it', async (t) => {
  const capability = holder([{ group: A, role: 'member' }])
  t.ok(Object.isFrozen(capability))
  t.ok(Object.isFrozen(capability.roles))
  const groups = capability.groups('member') as string[]
  const binding = capability.binding('moderator') as { groups: string[]; isAdmin: boolean }
  const attempts: [string, () => unknown][] = [
    ['isAdmin', () => ((capability as { isAdmin: boolean }).isAdmin = true)],
    ['subject', () => ((capability as { subject: string }).subject = 'root')],
    ['a method', () => ((capability as { has: unknown }).has = () => true)],
    ['a new property', () => ((capability as unknown as Record<string, unknown>).extra = 1)],
    ['delete', () => delete (capability as { expiresAt?: number }).expiresAt],
    ['push a group', () => groups.push(B)],
    ['assign a group', () => (groups[0] = B)],
    ['grow an empty list', () => (binding.groups as string[]).push(B)],
    ['binding.isAdmin', () => (binding.isAdmin = true)],
    ['push a role', () => (capability.roles as string[]).push('root')],
  ]
  for (const [name, attempt] of attempts) {
    t.throws(attempt, TypeError, name)
  }
  t.same(capability.groups('member'), [A])
  t.same(capability.groups('moderator'), [])
  t.notOk(capability.isAdmin)
  t.notOk(capability.has('moderator', B))
  t.equal(capability.subject, 'u')
})

t.test('a role outside the hierarchy is API misuse, never a grant', async (t) => {
  const admin = holder([{ group: A, role: 'admin' }])
  for (const [name, call] of [
    ['groups', () => admin.groups('moderater')],
    ['binding', () => admin.binding('Admin')],
    ['has', () => admin.has('owner')],
    ['has in a group', () => admin.has('owner', A)],
  ] as const) {
    t.throws(call, { code: 'KH_INVALID_OPTIONS', message: /Unknown role/ }, name)
  }
})

t.test('its methods need no this: a handler may pass them around', async (t) => {
  const capability = holder([{ group: A, role: 'moderator' }])
  const { has, groups, binding, hasScope } = capability
  t.ok(has('member', A))
  t.same(groups('moderator'), [A])
  t.equal(binding('member'), capability.binding('member'))
  t.notOk(hasScope('forum:read'))
})
