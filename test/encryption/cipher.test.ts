/**
 * Encrypted columns without a database: the stored format, the associated data binding a value to
 * its table, column and row key, fresh nonces, blind indexes, the data-key providers (local, from
 * the environment, envelope) and the `encrypted` declaration's checks.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { blindIndex, keyIdOf, open, rowKeyText, seal } from '../../src/encryption/cipher.ts'
import {
  dataKeys,
  dataKeysFromEnv,
  deriveKeyId,
  keyRing,
  unwrapDataKeys,
  type DataKeys,
} from '../../src/encryption/data-keys.ts'
import { parseEncrypted } from '../../src/encryption/encrypted-columns.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { inGroup } from '../../src/sql/guard.ts'

const keyA = randomBytes(32)
const keyB = randomBytes(32)
const ring = keyRing(dataKeys({ current: keyA }))
const site = { table: 'groups', column: 'invite_code' }
const rowKey = '5f0c2a4e-1b7d-4c39-9a51-0d2f1e3b6c88'

t.test('a value round-trips in the versioned format that names its key', async (t) => {
  for (const text of ['', 'AB-12-CD', 'é ✓ 𝄞', 'x'.repeat(10_000)]) {
    const stored = seal(ring, site, rowKey, text)
    t.match(stored, /^kh1\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]+$/, 'kh1.<keyId>.<base64url>')
    t.equal(keyIdOf(stored), deriveKeyId(keyA))
    t.notOk(stored.includes(text) && text !== '', 'no plaintext in the stored text')
    t.equal(open(ring, site, rowKey, stored), text)
  }
  for (const [stored, id] of [
    ['plain text', undefined],
    ['kh2.abc.def', undefined],
    ['kh1', undefined],
    ['kh1.abc', undefined],
    ['kh1.abc.def.ghi', undefined],
    ['xkh1.abc.def', undefined],
    ['kh1.abc.def', 'abc'],
    ['kh1..def', ''],
  ] as const) {
    t.equal(keyIdOf(stored), id, stored)
  }
})

t.test('a fresh nonce per value: the same plaintext never seals the same way twice', async (t) => {
  const seen = new Set<string>()
  const nonces = new Set<string>()
  for (let i = 0; i < 1000; i++) {
    const stored = seal(ring, site, rowKey, 'same')
    seen.add(stored)
    nonces.add(Buffer.from(stored.split('.')[2]!, 'base64url').subarray(0, 12).toString('hex'))
  }
  t.equal(seen.size, 1000)
  t.equal(nonces.size, 1000)
})

t.test('the associated data binds table, column and row key', async (t) => {
  const stored = seal(ring, site, rowKey, 'secret')
  const elsewhere = [
    ['another row', site, '0f0c2a4e-1b7d-4c39-9a51-0d2f1e3b6c88'],
    ['another column', { table: 'groups', column: 'name' }, rowKey],
    ['another table', { table: 'users', column: 'invite_code' }, rowKey],
  ] as const
  for (const [what, where, key] of elsewhere) {
    t.throws(() => open(ring, where, key, stored), { code: 'KH_DECRYPT_FAILED' }, what)
  }
  // The row key as PostgreSQL prints it (lower case) opens what an upper-case key sealed.
  t.equal(
    open(ring, site, rowKey, seal(ring, site, rowKeyText(rowKey.toUpperCase(), site, 'id'), 'v')),
    'v',
  )
  t.equal(rowKeyText(42, site, 'id'), '42')
  t.equal(rowKeyText(42n, site, 'id'), '42')
  t.equal(rowKeyText('code-7', site, 'id'), 'code-7')
  for (const bad of [undefined, null, '', 1.5, true, {}]) {
    t.throws(() => rowKeyText(bad, site, 'id'), { code: 'KH_ENCRYPTED_COLUMN' }, String(bad))
  }
})

t.test(
  'a stored value that does not open: a typed error naming the column, never a value',
  async (t) => {
    const stored = seal(ring, site, rowKey, 'secret')
    const [, id, body] = stored.split('.') as [string, string, string]
    const bytes = Buffer.from(body, 'base64url')
    bytes[20]! ^= 1
    const bad: [string, unknown][] = [
      ['not text', 42],
      ['not the format', 'secret'],
      ['unknown key', `kh1.AAAAAAAA.${body}`],
      ['a malformed key ID', `kh1.a*b.${body}`],
      ['truncated', `kh1.${id}.AAAA`],
      ['altered', `kh1.${id}.${bytes.toString('base64url')}`],
    ]
    for (const [what, value] of bad) {
      const error = t.throws(() => open(ring, site, rowKey, value), {
        code: 'KH_DECRYPT_FAILED',
        statusCode: 500,
      }) as Error
      t.match(error.message, /^A value of groups\.invite_code failed to decrypt: /, what)
      t.notMatch(error.message, /secret/, `${what}: no value in the message`)
    }
  },
)

t.test(
  'blind indexes: equal values in one column, different across columns and keys',
  async (t) => {
    const a = ring.current
    t.equal(blindIndex(a, site, 'x'), blindIndex(a, site, 'x'))
    t.match(blindIndex(a, site, 'x'), /^[A-Za-z0-9_-]{43}$/)
    t.not(blindIndex(a, site, 'x'), blindIndex(a, site, 'y'))
    t.not(blindIndex(a, site, 'x'), blindIndex(a, { table: 'groups', column: 'name' }, 'x'))
    const other = keyRing(dataKeys({ current: keyB })).current
    t.not(blindIndex(a, site, 'x'), blindIndex(other, site, 'x'))
  },
)

t.test('rotation: the current key seals, every listed key opens', async (t) => {
  const old = keyRing(dataKeys({ current: keyA }))
  const rotated = keyRing(dataKeys({ current: keyB, previous: [keyA.toString('base64')] }))
  const before = seal(old, site, rowKey, 'v1')
  t.equal(open(rotated, site, rowKey, before), 'v1', 'an old value still reads')
  t.equal(keyIdOf(seal(rotated, site, rowKey, 'v2')), deriveKeyId(keyB), 'new writes: new key')
  t.same(
    rotated.all.map((e) => e.id),
    [deriveKeyId(keyB), deriveKeyId(keyA)],
  )
  t.throws(() => open(old, site, rowKey, seal(rotated, site, rowKey, 'v')), {
    code: 'KH_DECRYPT_FAILED',
  })
})

t.test('KEYHOLE_DATA_KEY and KEYHOLE_DATA_KEYS', async (t) => {
  t.equal(dataKeysFromEnv({}), undefined)
  t.equal(dataKeysFromEnv({ KEYHOLE_DATA_KEY: ' ' }), undefined)
  const keys = dataKeysFromEnv({
    KEYHOLE_DATA_KEY: keyB.toString('base64'),
    KEYHOLE_DATA_KEYS: ` ${keyA.toString('base64url')} ,,`,
  }) as DataKeys
  t.equal(keys.currentKeyId, deriveKeyId(keyB))
  t.same(keys.keyIds, [deriveKeyId(keyB), deriveKeyId(keyA)])
  t.same(keys.key(deriveKeyId(keyA)), keyA)
  t.same(dataKeysFromEnv({ KEYHOLE_DATA_KEY: keyA.toString('base64') })?.keyIds, [
    deriveKeyId(keyA),
  ])
  const secret = randomBytes(16).toString('base64')
  for (const env of [
    { KEYHOLE_DATA_KEY: secret },
    { KEYHOLE_DATA_KEY: keyA.toString('base64'), KEYHOLE_DATA_KEYS: secret },
  ]) {
    const error = t.throws(() => dataKeysFromEnv(env), { code: 'KH_DATA_KEY_MISSING' }) as Error
    t.notMatch(error.message, secret, 'the key is never echoed')
  }
})

t.test('data-key providers are checked once, with exact codes', async (t) => {
  const bad: [string, () => unknown][] = [
    ['no options', () => dataKeys(undefined as never)],
    ['a short key', () => dataKeys({ current: randomBytes(16) })],
    ['previous not a list', () => dataKeys({ current: keyA, previous: keyB as never })],
    ['not a provider', () => keyRing({} as DataKeys)],
    ['null', () => keyRing(null as never)],
    ['a malformed ID', () => keyRing({ currentKeyId: 'a.b', key: () => keyA })],
    ['no key for the ID', () => keyRing({ currentKeyId: 'k1', key: () => undefined })],
    ['a short key by ID', () => keyRing({ currentKeyId: 'k1', key: () => new Uint8Array(8) })],
    [
      'a listed ID without key',
      () =>
        keyRing({
          currentKeyId: 'k1',
          keyIds: ['k1', 'k0'],
          key: (id) => (id === 'k1' ? keyA : undefined),
        }),
    ],
  ]
  for (const [what, make] of bad) t.throws(make, { code: 'KH_DATA_KEY_MISSING' }, what)
  // Your own provider: IDs of your choosing, cached once per provider object.
  let calls = 0
  const own: DataKeys = {
    currentKeyId: '2026-12',
    keyIds: ['2026-12', '2026-12', '2025-01'],
    key: (id) => {
      calls++
      return id === '2026-12' ? keyA : id === '2025-01' ? keyB : undefined
    },
  }
  const r = keyRing(own)
  t.equal(keyRing(own), r, 'one ring per provider')
  t.same(
    r.all.map((e) => e.id),
    ['2026-12', '2025-01'],
  )
  t.equal(r.entry('nope'), undefined)
  t.equal(r.entry('nope'), undefined)
  t.same(
    keyRing({ currentKeyId: 'only', key: () => keyA }).all.map((e) => e.id),
    ['only'],
    'keyIds defaults to the current one',
  )
  t.equal(r.entry('bad id!'), undefined)
  t.equal(calls, 3, 'each ID asked once')
})

t.test('unwrapDataKeys: each wrapped key unwrapped once, at start-up', async (t) => {
  const wrapped = new Map([
    ['wrapped-b', keyB],
    ['wrapped-a', keyA],
  ])
  const asked: string[] = []
  const keys = await unwrapDataKeys({
    current: 'wrapped-b',
    previous: ['wrapped-a'],
    unwrap: async (w: string) => {
      asked.push(w)
      return wrapped.get(w) as Uint8Array
    },
  })
  t.same(asked, ['wrapped-b', 'wrapped-a'])
  t.equal(keys.currentKeyId, deriveKeyId(keyB))
  t.same(keys.key(deriveKeyId(keyA)), keyA)
  t.same((await unwrapDataKeys({ current: 1, unwrap: async () => keyA })).keyIds, [
    deriveKeyId(keyA),
  ])
  await t.rejects(unwrapDataKeys({ current: 'x', unwrap: async () => new Uint8Array(31) }), {
    code: 'KH_DATA_KEY_MISSING',
  })
  await t.rejects(unwrapDataKeys({ current: 'x' } as never), { code: 'KH_DATA_KEY_MISSING' })
  await t.rejects(unwrapDataKeys(null as never), { code: 'KH_DATA_KEY_MISSING' })
  await t.rejects(
    unwrapDataKeys({
      current: 'x',
      unwrap: async () => {
        throw new Error('KMS down')
      },
    }),
    { message: 'KMS down' },
  )
})

t.test('the encrypted declaration', async (t) => {
  t.same(
    parseEncrypted(['invite_code', { column: 'email', blindIndex: 'email_index' }], 'groups'),
    {
      rowKey: 'id',
      columns: [{ column: 'invite_code' }, { column: 'email', blindIndex: 'email_index' }],
    },
  )
  t.same(parseEncrypted({ columns: ['secret'] }, 'codes'), {
    rowKey: 'id',
    columns: [{ column: 'secret' }],
  })
  t.same(parseEncrypted({ rowKey: 'code', columns: [{ column: 'secret' }] }, 'codes'), {
    rowKey: 'code',
    columns: [{ column: 'secret' }],
  })
  const policies = definePolicies({
    groups: { read: inGroup('id', 'member'), encrypted: ['invite_code'] },
  })
  t.ok(Object.isFrozen(policies.tables.groups?.encrypted), 'kept frozen in the policies')
  const bad: [string, unknown, string][] = [
    ['empty', [], 'KH_INVALID_OPTIONS'],
    ['not a list', 'invite_code', 'KH_INVALID_OPTIONS'],
    ['object without columns', { rowKey: 'id' }, 'KH_INVALID_OPTIONS'],
    ['unknown key', { columns: ['a'], key: 'id' }, 'KH_INVALID_OPTIONS'],
    ['bad entry', [42], 'KH_INVALID_OPTIONS'],
    ['entry as a list', [['a']], 'KH_INVALID_OPTIONS'],
    ['entry with unknown key', [{ column: 'a', index: 'b' }], 'KH_INVALID_OPTIONS'],
    ['twice', ['a', 'a'], 'KH_INVALID_OPTIONS'],
    ['the row key', ['id'], 'KH_INVALID_OPTIONS'],
    ['index = its column', [{ column: 'a', blindIndex: 'a' }], 'KH_INVALID_OPTIONS'],
    ['index = another column', ['b', { column: 'a', blindIndex: 'b' }], 'KH_INVALID_OPTIONS'],
    ['index = the row key', [{ column: 'a', blindIndex: 'id' }], 'KH_INVALID_OPTIONS'],
    ['bad column name', ['a;b'], 'KH_INVALID_IDENTIFIER'],
    ['bad index name', [{ column: 'a', blindIndex: 'x y' }], 'KH_INVALID_IDENTIFIER'],
    ['bad row key', { rowKey: '', columns: ['a'] }, 'KH_INVALID_IDENTIFIER'],
  ]
  for (const [what, value, code] of bad) {
    t.throws(
      () =>
        definePolicies({ groups: { read: inGroup('id', 'member'), encrypted: value as never } }),
      { code },
      what,
    )
  }
})
