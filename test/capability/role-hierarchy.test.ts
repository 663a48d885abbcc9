import t from 'tap'
import { assertRoleKnown, createRoleHierarchy } from '../../src/capability/role-hierarchy.ts'

t.test('ranks roles lowest first; names are exact', async (t) => {
  const roles = ['reader', 'writer', 'owner', 'root']
  const hierarchy = createRoleHierarchy(roles, 'owner')
  t.same(hierarchy.roles, roles)
  t.not(hierarchy.roles, roles, 'a copy')
  t.ok(Object.isFrozen(hierarchy) && Object.isFrozen(hierarchy.roles))
  t.equal(hierarchy.adminRole, 'owner')
  t.equal(hierarchy.adminRank, 2)
  t.same(
    roles.map((role) => hierarchy.rank(role)),
    [0, 1, 2, 3],
  )
  for (const unknown of [
    'Reader',
    'READER',
    'reader ',
    '',
    '__proto__',
    'toString',
    'constructor',
  ]) {
    t.equal(hierarchy.rank(unknown), undefined, `${JSON.stringify(unknown)} has no rank`)
  }
})

t.test('assertRoleKnown names the unknown role and the hierarchy', async (t) => {
  t.doesNotThrow(() => assertRoleKnown(['member', 'admin'], 'member'))
  t.throws(() => assertRoleKnown(['member', 'admin'], 'moderater'), {
    name: 'ConfigurationError',
    code: 'KH_INVALID_OPTIONS',
    statusCode: 500,
    message: 'Unknown role "moderater": the hierarchy is "member", "admin"',
  })
  t.throws(() => assertRoleKnown(['member'], 'Member'), { code: 'KH_INVALID_OPTIONS' })
})
