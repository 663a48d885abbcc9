import t from 'tap'
import { permissionsSchema } from '../../src/capability/claim-schema.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'
const schema = permissionsSchema(3)

t.test('reads group and role into fresh objects; other keys are ignored', async (t) => {
  const claim = JSON.parse(
    `[{"group":"${A}","role":"member","expires":1,"__proto__":{"role":"admin"},"constructor":{"prototype":{"x":1}}}]`,
  ) as unknown
  const parsed = schema.parse(claim)
  t.same(parsed, [{ group: A, role: 'member' }])
  t.same(Object.keys(parsed[0] as object), ['group', 'role'])
  t.equal(Object.getPrototypeOf(parsed[0]), Object.prototype)
  t.not(parsed[0], (claim as unknown[])[0], 'never the claim object itself')
})

t.test('refuses what is not a bounded list of { group, role }', async (t) => {
  const bad: [string, unknown][] = [
    ['an object', { group: A, role: 'member' }],
    ['a string', 'member'],
    ['null', null],
    ['too many entries', Array.from({ length: 4 }, () => ({ group: A, role: 'member' }))],
    ['an entry that is a string', [A]],
    ['an entry that is an array', [[A, 'member']]],
    ['an entry that is null', [null]],
    ['no group', [{ role: 'member' }]],
    ['no role', [{ group: A }]],
    ['a number role', [{ group: A, role: 1 }]],
    ['a boolean group', [{ group: true, role: 'member' }]],
    ['an array group', [{ group: [A], role: 'member' }]],
    ['an object group', [{ group: { id: A }, role: 'member' }]],
    ['an over-long role', [{ group: A, role: 'm'.repeat(257) }]],
    ['an over-long group', [{ group: 'g'.repeat(257), role: 'member' }]],
  ]
  for (const [name, value] of bad) {
    t.equal(schema.safeParse(value).success, false, name)
  }
})
