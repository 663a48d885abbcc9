import t from 'tap'
import fc from 'fast-check'
import { parseGroupId } from '../../src/capability/group-id.ts'
import type { GroupIdType } from '../../src/capability/capability.ts'

const A = '0b6a3c0e-6d0b-4a43-9f5e-2f1c9b7f6a01'

// [type, accepted values with their canonical form, refused values]
const cases: [GroupIdType, [unknown, string][], unknown[]][] = [
  [
    'uuid',
    [
      [A, A],
      [A.toUpperCase(), A],
      ['00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000'],
    ],
    [
      `{${A}}`,
      A.replaceAll('-', ''),
      `urn:uuid:${A}`,
      ` ${A}`,
      `${A}\n`,
      `${A}\0`,
      `${A},${A}`,
      A.slice(0, 35) + 'g',
      '1);--',
      '',
      1,
      true,
      null,
      [A],
      { toString: () => A },
    ],
  ],
  [
    'bigint',
    [
      ['0', '0'],
      [0, '0'],
      [-0, '0'],
      [7, '7'],
      ['12', '12'],
      [Number.MAX_SAFE_INTEGER, '9007199254740991'],
      ['9007199254740993', '9007199254740993'],
      ['9223372036854775807', '9223372036854775807'],
    ],
    [
      2 ** 53,
      2 ** 53 + 1,
      1e21,
      -1,
      '-1',
      1.5,
      '1.5',
      NaN,
      Infinity,
      '9223372036854775808',
      '99999999999999999999',
      '01',
      '+1',
      '1e3',
      '0x10',
      ' 1',
      '1 ',
      '1,3',
      '1);--',
      '1\0',
      '',
      true,
      null,
      [1],
      10n,
    ],
  ],
  [
    'integer',
    [
      [2147483647, '2147483647'],
      ['2147483647', '2147483647'],
      ['5', '5'],
    ],
    [2147483648, '2147483648', -5, 0.5, '1e3', '1,3', Number.MAX_SAFE_INTEGER],
  ],
  [
    'text',
    [
      ['team-a', 'team-a'],
      ['org:1.b_c', 'org:1.b_c'],
      ['Team-A', 'Team-A'],
      ['x'.repeat(128), 'x'.repeat(128)],
    ],
    ['a b', '', "o'neil", 'a;b', '1);--', 'a\0', 'é', 'x'.repeat(129), 5, null],
  ],
]

for (const [type, accepted, refused] of cases) {
  t.test(`${type} group IDs`, async (t) => {
    for (const [value, canonical] of accepted) {
      t.equal(parseGroupId(type, value), canonical, `accepts ${String(value).slice(0, 40)}`)
    }
    for (const value of refused) {
      t.equal(parseGroupId(type, value), undefined, `refuses ${JSON.stringify(String(value))}`)
    }
  })
}

t.test('a uuid is accepted exactly when the 8-4-4-4-12 hex expression matches it', async (t) => {
  // The definition uuidId implements by character code, and its canonical form.
  const definition = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
  const expected = (value: string) => (definition.test(value) ? value.toLowerCase() : undefined)
  // Near misses: a valid UUID with one character replaced (by a dash, a letter past f, a
  // non-ASCII or astral character, a NUL), removed or added.
  const uuid = fc.uuid().chain((id) => fc.constantFrom(id, id.toUpperCase(), mixedCase(id)))
  const replacement = fc.constantFrom('-', 'g', 'G', '0', 'F', 'é', '\u0660', '😀', '\0', ' ', '{')
  const nearMiss = fc.oneof(
    fc
      .tuple(uuid, fc.nat(35), replacement)
      .map(([id, i, c]) => id.slice(0, i) + c + id.slice(i + 1)),
    fc.tuple(uuid, fc.nat(35)).map(([id, i]) => id.slice(0, i) + id.slice(i + 1)),
    fc.tuple(uuid, fc.nat(36), replacement).map(([id, i, c]) => id.slice(0, i) + c + id.slice(i)),
  )
  const anyString = fc.string({ minLength: 34, maxLength: 38, unit: 'binary' })
  fc.assert(
    fc.property(fc.oneof(uuid, nearMiss, anyString), (value) => {
      return parseGroupId('uuid', value) === expected(value)
    }),
    { numRuns: 5000 },
  )
  t.pass('5 000 values: the table and the expression agree')
})

function mixedCase(id: string): string {
  return [...id].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('')
}
