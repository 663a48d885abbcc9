import t from 'tap'
import { groupArray } from '../../src/sql/compile.ts'
import { createTestDatabase } from '../helpers/database.ts'

const db = await createTestDatabase(t)

/** What PostgreSQL reads from the parameter, as text. */
async function read(value: Buffer | string, type: string): Promise<string> {
  const result = await db.pool.query(`SELECT ($1::${type}[])::text AS v`, [value])
  return result.rows[0].v
}

t.test('UUID and integer arrays go in binary and read back exactly', async (t) => {
  const uuids = Object.freeze([
    '00000000-0000-4000-8000-000000000001',
    'FFFFFFFF-0000-4000-8000-00000000000A',
  ])
  const binary = groupArray(uuids, 'uuid')
  t.ok(Buffer.isBuffer(binary))
  t.equal(groupArray(uuids, 'uuid'), binary, 'built once per frozen array')
  t.equal(
    await read(binary, 'uuid'),
    '{00000000-0000-4000-8000-000000000001,ffffffff-0000-4000-8000-00000000000a}',
  )
  const table: [string, readonly string[], string][] = [
    [
      'bigint',
      ['1', '-9223372036854775808', '9223372036854775807'],
      '{1,-9223372036854775808,9223372036854775807}',
    ],
    ['integer', ['7', '-2147483648', '2147483647'], '{7,-2147483648,2147483647}'],
    ['uuid', [], '{}'],
    ['bigint', [], '{}'],
  ]
  for (const [type, ids, expected] of table) {
    const value = groupArray(ids, type as 'bigint')
    t.ok(Buffer.isBuffer(value), `${type} [${ids.join(',')}] in binary`)
    t.equal(await read(value, type), expected)
  }
})

t.test(
  'what binary cannot carry exactly goes as a text literal, and PostgreSQL decides',
  async (t) => {
    const table: [string, readonly string[], string | undefined][] = [
      ['text', ['a', 'b c'], '{a,"b c"}'],
      ['uuid', ['not-a-uuid'], undefined],
      ['bigint', ['9223372036854775808'], undefined],
      ['integer', ['2147483648'], undefined],
      ['integer', ['1.5'], undefined],
    ]
    for (const [type, ids, expected] of table) {
      const value = groupArray(ids, type as 'uuid')
      t.type(value, 'string', `${type} [${ids.join(',')}] as a literal`)
      if (expected === undefined) {
        await t.rejects(read(value, type), { code: /^22/ }, 'refused by the database')
      } else t.equal(await read(value, type), expected)
    }
  },
)
