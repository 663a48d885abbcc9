import t from 'tap'
import {
  capabilityOptionsSchema,
  resolveCapabilityOptions,
  type CapabilityOptions,
} from '../../src/capability/derive.ts'
import { ConfigurationError } from '../../src/errors.ts'

t.test('defaults', async (t) => {
  const resolved = resolveCapabilityOptions()
  t.equal(resolved.claim, 'permissions')
  t.equal(resolved.subjectClaim, 'sub')
  t.equal(resolved.groupIdType, 'uuid')
  t.equal(resolved.maxPermissions, 10_000)
  t.same(resolved.hierarchy.roles, ['member', 'moderator', 'admin'])
  t.equal(resolved.hierarchy.adminRole, 'admin')
  t.ok(Object.isFrozen(resolved))
  t.same(resolveCapabilityOptions({}), resolved)
  t.equal(resolveCapabilityOptions({ roles: ['a', 'b'] }).hierarchy.adminRole, 'b', 'the last role')
})

t.test('bad options throw KH_INVALID_OPTIONS naming the option', async (t) => {
  const bad: [string, unknown, RegExp][] = [
    ['empty roles', { roles: [] }, /^capability\.roles: /],
    ['duplicate roles', { roles: ['a', 'a'] }, /^capability\.roles: role names must be unique/],
    ['a role with spaces', { roles: ['a b'] }, /^capability\.roles\.0: /],
    ['a role that is not a string', { roles: [1] }, /^capability\.roles\.0: /],
    ['roles that are not a list', { roles: 'member' }, /^capability\.roles: /],
    [
      'too many roles',
      { roles: Array.from({ length: 33 }, (_, i) => `r${i}`) },
      /capability\.roles/,
    ],
    ['adminRole not in roles', { adminRole: 'root' }, /^capability\.adminRole: "root" is not one/],
    ['adminRole case', { adminRole: 'Admin' }, /^capability\.adminRole/],
    ['adminRole not a string', { adminRole: 1 }, /^capability\.adminRole: /],
    ['bad groupIdType', { groupIdType: 'int' }, /^capability\.groupIdType: /],
    ['maxPermissions 0', { maxPermissions: 0 }, /^capability\.maxPermissions: /],
    ['maxPermissions negative', { maxPermissions: -1 }, /^capability\.maxPermissions: /],
    ['maxPermissions fraction', { maxPermissions: 1.5 }, /^capability\.maxPermissions: /],
    ['maxPermissions huge', { maxPermissions: 1e9 }, /^capability\.maxPermissions: /],
    ['maxPermissions string', { maxPermissions: '10' }, /^capability\.maxPermissions: /],
    ['unknown key', { rolez: ['a'] }, /rolez/],
    ['empty claim', { claim: '' }, /^capability\.claim: /],
    ['control character in claim', { claim: 'a\nb' }, /^capability\.claim: must not contain/],
    ['__proto__ claim', { claim: '__proto__' }, /^capability\.claim: must not be __proto__/],
    ['constructor subjectClaim', { subjectClaim: 'constructor' }, /^capability\.subjectClaim: /],
    ['same claim twice', { claim: 'sub' }, /capability\.claim and capability\.subjectClaim/],
    ['not an object', null, /^capability: /],
  ]
  for (const [name, options, message] of bad) {
    t.throws(
      () => resolveCapabilityOptions(options as CapabilityOptions),
      { name: 'ConfigurationError', code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
  const error = t.throws(() => resolveCapabilityOptions({ roles: [] }))
  t.type(error, ConfigurationError)
})

t.test("the caller's options are never mutated", async (t) => {
  const options = { roles: ['reader', 'writer'], groupIdType: 'text' as const }
  const snapshot = structuredClone(options)
  const resolved = resolveCapabilityOptions(options)
  t.same(options, snapshot)
  t.not(resolved.hierarchy.roles, options.roles)
  options.roles.push('root')
  t.same(resolved.hierarchy.roles, ['reader', 'writer'], 'later changes do not reach the result')
  const frozen = Object.freeze({ roles: Object.freeze(['a', 'b']), adminRole: 'a' })
  t.equal(resolveCapabilityOptions(frozen).hierarchy.adminRole, 'a', 'frozen options are fine')
})

t.test('the schema is strict and composes into a larger one', async (t) => {
  t.equal(capabilityOptionsSchema.safeParse({ maxPermissions: 5 }).success, true)
  t.equal(capabilityOptionsSchema.safeParse({ extra: 1 }).success, false)
})
