/**
 * Encrypted columns on real PostgreSQL, in both modes, through createKeyhole's `run` (the request
 * handle) and `runAsSystem` (the system handle): values sealed on write and opened on read, only
 * ciphertext in the table (raw SQL as the runtime role included), blind-index lookups, refusals
 * before any SQL with exact codes, a ciphertext moved to another row or column refused with
 * KH_DECRYPT_FAILED, key rotation with `reencrypt`, and a missing data key refused at start-up.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { createKeyhole, type Keyhole } from '../../src/db/create-keyhole.ts'
import { dataKeys, deriveKeyId } from '../../src/encryption/data-keys.ts'
import { reencrypt } from '../../src/encryption/reencrypt.ts'
import { op } from '../../src/sql/filter.ts'
import { bindPolicies, definePolicies, type PolicyHandle } from '../../src/sql/policies.ts'
import { sql } from '../../src/sql/sql-tag.ts'
import { createEncryptedDatabase, encryptedPolicies } from './helpers/encrypted-database.ts'

const k = await createEncryptedDatabase(t)
const runtimePool = k.runtimePool(4)
const keyA = randomBytes(32)
const keyB = randomBytes(32)
const keys = dataKeys({ current: keyA })

function keyholeFor(mode: 'rls' | 'guard', data = keys): Keyhole {
  return mode === 'rls'
    ? createKeyhole({
        pool: runtimePool,
        policies: encryptedPolicies,
        signingKey: k.signingKey,
        dataKeys: data,
      })
    : // 'guard' mode on a pool RLS does not apply to: the statement's guard is the only line.
      createKeyhole({ pool: k.db.pool, policies: encryptedPolicies, mode: 'guard', dataKeys: data })
}

/** The row as stored, read by the superuser. */
async function stored(table: string, where: string, value: string) {
  const { rows } = await k.db.pool.query(`SELECT * FROM ${table} WHERE ${where} = $1`, [value])
  return rows[0] as Record<string, string | null>
}

async function newGroup(keyhole: Keyhole, values: Record<string, unknown> = {}) {
  const admin = keyhole.capability({ subject: 'admin', admin: true })
  const id = randomUUID()
  const suffix = id.slice(0, 8)
  const row = {
    id,
    name: `group ${suffix}`,
    invite_code: `code-${suffix}`,
    email: `${suffix}@example.org`,
    ...values,
  }
  const inserted = await keyhole.run(admin, (db) =>
    db.insert('groups', row, { chosenKeys: ['id'] }),
  )
  return { id, row, inserted, admin }
}

for (const mode of ['rls', 'guard'] as const) {
  const keyhole = keyholeFor(mode)
  const member = (id: string) => keyhole.capability({ subject: 'm', groups: { member: [id] } })
  const moderator = (id: string) =>
    keyhole.capability({ subject: 'mod', groups: { moderator: [id] } })

  t.test(`${mode}: written sealed, read in clear`, async (t) => {
    const { id, row, inserted } = await newGroup(keyhole)
    t.same(inserted, { ...row, email_index: inserted.email_index }, 'the insert returns plaintext')
    const raw = await stored('groups', 'id', id)
    t.match(raw.invite_code, /^kh1\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]+$/)
    t.equal(raw.invite_code!.split('.')[1], deriveKeyId(keyA), 'the key ID is stored')
    t.notMatch(raw.invite_code, row.invite_code)
    t.notMatch(raw.email, row.email)
    t.match(raw.email_index, /^[A-Za-z0-9_-]{43}$/)
    t.equal(raw.name, row.name, 'other columns as they are')

    const [read] = await keyhole.run(member(id), (db) => db.select('groups', { id }))
    t.same(read, { ...row, email_index: raw.email_index })
    const [narrow] = await keyhole.run(member(id), (db) =>
      db.select('groups', { id }, { columns: ['name', 'invite_code'] }),
    )
    t.same(narrow, { name: row.name, invite_code: row.invite_code }, 'the row key read and dropped')

    const updated = await keyhole.run(moderator(id), (db) =>
      db.update('groups', { id }, { invite_code: 'NEW-CODE' }, { returning: ['invite_code'] }),
    )
    t.same(updated.rows, [{ invite_code: 'NEW-CODE' }])
    const after = await stored('groups', 'id', id)
    t.not(after.invite_code, raw.invite_code)
    t.notMatch(after.invite_code, 'NEW-CODE')
    t.equal(after.email, raw.email, 'a column not set is not rewritten')

    const cleared = await keyhole.run(moderator(id), (db) =>
      db.update('groups', { id }, { email: null }),
    )
    t.match(cleared.rows, [{ email: null, email_index: null, invite_code: 'NEW-CODE' }])

    const removed = await keyhole.run(moderator(id), (db) =>
      db.delete('groups', { id }, { returning: ['invite_code'] }),
    )
    t.same(removed.rows, [{ invite_code: 'NEW-CODE' }])
  })

  t.test(`${mode}: several rows, nulls, the system handle and a text row key`, async (t) => {
    const admin = keyhole.capability({ subject: 'admin', admin: true })
    const [a, b] = [randomUUID(), randomUUID()]
    const result = await keyhole.run(admin, (db) =>
      db.insert(
        'groups',
        [
          { id: a, name: 'a', invite_code: 'code a', email: 'a@example.org' },
          { id: b, name: 'b', invite_code: null, email: null },
        ],
        { chosenKeys: ['id'] },
      ),
    )
    t.match(result, { count: 2, inserted: [{ invite_code: 'code a' }, { invite_code: null }] })
    t.equal((await stored('groups', 'id', b)).invite_code, null, 'null stays null')
    const none = await keyhole.run(admin, (db) =>
      db.insert(
        'groups',
        { id: randomUUID(), name: 'c', invite_code: 'x' },
        { returning: [], chosenKeys: ['id'] },
      ),
    )
    t.same(none, {}, 'one row returning nothing')

    const system = await keyhole.runAsSystem(
      { reason: 'create a group', tables: ['groups'], operations: ['read', 'insert'] },
      async (db) => {
        const id = randomUUID()
        await db.insert(
          'groups',
          { id, name: 'sys', invite_code: 'system code' },
          { chosenKeys: ['id'] },
        )
        return db.select('groups', { id }, { columns: ['invite_code'] })
      },
    )
    t.same(system, [{ invite_code: 'system code' }])

    const group = randomUUID()
    const code = `c-${group}`
    const inserted = await keyhole.run(member(group), (db) =>
      db.insert('codes', { code, group_id: group, secret: 'the secret' }, { chosenKeys: ['code'] }),
    )
    t.equal(inserted.secret, 'the secret')
    t.match((await stored('codes', 'code', code)).secret, /^kh1\./)
    const [read] = await keyhole.run(member(group), (db) =>
      db.select('codes', { group_id: group }, { columns: ['secret'] }),
    )
    t.same(read, { secret: 'the secret' })
    await k.db.pool.query('UPDATE codes SET code = NULL WHERE code = $1', [code])
    await t.rejects(
      keyhole.run(member(group), (db) => db.select('codes', { group_id: group })),
      { code: 'KH_DECRYPT_FAILED' },
      'a row that lost its row key does not open',
    )
  })

  t.test(`${mode}: equality lookups through the blind index`, async (t) => {
    const { id, row } = await newGroup(keyhole)
    const other = await newGroup(keyhole)
    const admin = keyhole.capability({ subject: 'admin', admin: true })
    const names = (rows: { name?: unknown }[]) => rows.map((r) => r.name).sort()
    const lookups: [string, object, string[]][] = [
      ['equality', { email: row.email }, [row.name]],
      ['then another key', { email: row.email, name: row.name }, [row.name]],
      ['eq', { email: op({ eq: row.email }) }, [row.name]],
      [
        'in',
        { email: op({ in: [row.email, other.row.email] }) },
        [row.name, other.row.name].sort(),
      ],
      ['in, no match', { email: op({ in: ['nobody@example.org'] }) }, []],
      ['ne', { id: op({ in: [id, other.id] }), email: op({ ne: row.email }) }, [other.row.name]],
      [
        'notIn',
        { id: op({ in: [id, other.id] }), email: op({ notIn: [row.email] }) },
        [other.row.name],
      ],
      [
        'in a group',
        { g: op.or({ email: row.email }, { name: other.row.name }) },
        [row.name, other.row.name].sort(),
      ],
      [
        'not',
        { id: op({ in: [id, other.id] }), g: op.not({ email: row.email }) },
        [other.row.name],
      ],
      ['null test', { id, email: op({ isNull: false }) }, [row.name]],
      ['null', { id, email: null }, []],
    ]
    for (const [what, where, expected] of lookups) {
      const rows = await keyhole.run(admin, (db) => db.select('groups', where as never))
      t.same(names(rows), expected, what)
    }
    t.equal(await keyhole.run(admin, (db) => db.count('groups', { email: row.email })), 1, 'count')
    const updated = await keyhole.run(admin, (db) =>
      db.update('groups', { email: row.email }, { name: 'renamed' }),
    )
    t.equal(updated.count, 1, 'update found by the index')
  })

  t.test(`${mode}: refused before any SQL, with exact codes, nothing written`, async (t) => {
    const { id, row, admin } = await newGroup(keyhole)
    const before = await stored('groups', 'id', id)
    const refused: [string, (db: PolicyHandle) => Promise<unknown>][] = [
      ['insert without the row key', (db) => db.insert('groups', { name: 'x', invite_code: 'c' })],
      [
        'insert with a null row key',
        (db) => db.insert('groups', [{ id: null, name: 'x', invite_code: 'c' }]),
      ],
      [
        'insert of a number',
        (db) => db.insert('groups', { id: randomUUID(), name: 'x', invite_code: 42 }),
      ],
      [
        'insert of a blind index',
        (db) => db.insert('groups', { id: randomUUID(), name: 'x', email_index: 'x' }),
      ],
      ['update not pinned', (db) => db.update('groups', { name: row.name }, { invite_code: 'c' })],
      [
        'update pinned by a filter',
        (db) => db.update('groups', { id: op({ eq: id }) }, { invite_code: 'c' }),
      ],
      ['update pinned by null', (db) => db.update('groups', { id: null }, { invite_code: 'c' })],
      [
        'update pinned by a boolean',
        (db) => db.update('groups', { id: true }, { invite_code: 'c' }),
      ],
      ['update without where', (db) => db.update('groups', null as never, { invite_code: 'c' })],
      ['update of the row key', (db) => db.update('groups', { id }, { id: randomUUID() })],
      ['update of a blind index', (db) => db.update('groups', { id }, { email_index: 'x' })],
      [
        'equality without a blind index',
        (db) => db.select('groups', { invite_code: row.invite_code }),
      ],
      [
        'equality in a group',
        (db) => db.select('groups', { g: op.or({ invite_code: 'c' }, { name: 'n' }) }),
      ],
      ['a range', (db) => db.select('groups', { email: op({ gt: 'a' }) })],
      ['LIKE', (db) => db.select('groups', { email: op({ like: 'a%' }) })],
      ['two comparisons', (db) => db.select('groups', { email: op({ eq: 'a', ne: 'b' }) })],
      ['a number', (db) => db.select('groups', { email: 42 })],
      ['the blind index itself', (db) => db.select('groups', { email_index: before.email_index! })],
      ['orderBy', (db) => db.select('groups', {}, { orderBy: 'invite_code' })],
      [
        'orderBy a blind index',
        (db) => db.select('groups', {}, { orderBy: [['email_index', 'desc']] }),
      ],
      ['count', (db) => db.count('groups', { invite_code: 'c' })],
      ['delete', (db) => db.delete('groups', { invite_code: 'c' })],
    ]
    for (const [what, work] of refused) {
      await t.rejects(
        keyhole.run(admin, work),
        { code: 'KH_ENCRYPTED_COLUMN', statusCode: 500 },
        what,
      )
    }
    t.same(await stored('groups', 'id', id), before, 'nothing written')
    t.equal(
      (await k.db.pool.query(`SELECT count(*)::int AS n FROM groups WHERE name = 'x'`)).rows[0].n,
      0,
    )
  })

  t.test(
    `${mode}: tables without encrypted columns and malformed calls pass through`,
    async (t) => {
      const admin = keyhole.capability({ subject: 'admin', admin: true })
      const id = randomUUID()
      await keyhole.run(admin, async (db) => {
        t.match(
          await db.insert(
            'plain_groups',
            { id, name: 'p', invite_code: 'clear' },
            { chosenKeys: ['id'] },
          ),
          {
            invite_code: 'clear',
          },
        )
        t.equal(await db.count('plain_groups', { invite_code: 'clear' }), 1)
        t.match(await db.select('plain_groups', { id }, { orderBy: 'invite_code' }), [
          { name: 'p' },
        ])
        t.equal((await db.update('plain_groups', { id }, { name: 'q' })).count, 1)
        t.equal((await db.delete('plain_groups', { id })).count, 1)
      })
      t.equal(await stored('plain_groups', 'id', id), undefined)
      const malformed: [string, (db: PolicyHandle) => Promise<unknown>, string][] = [
        ['a null where', (db) => db.select('groups', null as never), 'KH_INVALID_OPTIONS'],
        ['a null row', (db) => db.insert('groups', [null as never]), 'KH_BAD_REQUEST'],
        ['a null set', (db) => db.update('groups', { id }, null as never), 'KH_BAD_REQUEST'],
      ]
      for (const [what, work, code] of malformed) {
        await t.rejects(keyhole.run(admin, work), { code }, what)
      }
    },
  )

  t.test(`${mode}: column rules and encryption on one table`, async (t) => {
    const admin = keyhole.capability({ subject: 'admin', admin: true })
    const [a, b] = [randomUUID(), randomUUID()]
    await keyhole.run(admin, (db) =>
      db.insert(
        'teams',
        [
          { id: a, name: 'team a', invite_code: 'code a' },
          { id: b, name: 'team b', invite_code: 'code b' },
        ],
        { chosenKeys: ['id'] },
      ),
    )
    t.match((await stored('teams', 'id', a)).invite_code, /^kh1\./)
    const mixed = keyhole.capability({ subject: 'x', groups: { moderator: [a], member: [b] } })
    const rows = await keyhole.run(mixed, (db) =>
      db.select('teams', { id: op({ in: [a, b] }) }, { orderBy: 'name' }),
    )
    t.same(
      rows.map((r) => [r.name, r.invite_code]),
      [
        ['team a', 'code a'],
        ['team b', undefined],
      ],
      'opened where readable, absent where not',
    )
    const [narrow] = await keyhole.run(moderator(a), (db) =>
      db.select('teams', { id: a }, { columns: ['invite_code'] }),
    )
    t.same(narrow, { invite_code: 'code a' })
    const updated = await keyhole.run(moderator(a), (db) =>
      db.update('teams', { id: a }, { invite_code: 'new a' }),
    )
    t.same(updated.rows, [{ id: a, name: 'team a', invite_code: 'new a' }])
    await t.rejects(
      keyhole.run(member(b), (db) => db.select('teams', { id: b }, { columns: ['invite_code'] })),
      { code: 'KH_COLUMN_DENIED' },
    )
  })

  t.test(`${mode}: a ciphertext moved to another row or column does not open`, async (t) => {
    const a = await newGroup(keyhole)
    const b = await newGroup(keyhole)
    const admin = a.admin
    await k.db.pool.query(
      'UPDATE groups SET invite_code = (SELECT invite_code FROM groups WHERE id = $1) WHERE id = $2',
      [a.id, b.id],
    )
    const error = await keyhole
      .run(admin, (db) => db.select('groups', { id: b.id }))
      .then(
        () => undefined,
        (e: Error) => e,
      )
    t.match(error, { code: 'KH_DECRYPT_FAILED', statusCode: 500, name: 'DecryptionFailed' })
    t.equal(
      error?.message,
      'A value of groups.invite_code failed to decrypt: authentication failed (moved to another row or column, or altered)',
    )
    t.notMatch(JSON.stringify(error), a.row.invite_code, 'never the other row’s plaintext')
    await k.db.pool.query('UPDATE groups SET email = invite_code WHERE id = $1', [a.id])
    await t.rejects(
      keyhole.run(admin, (db) => db.select('groups', { id: a.id })),
      {
        code: 'KH_DECRYPT_FAILED',
      },
    )
    await k.db.pool.query(`UPDATE groups SET invite_code = 'in clear' WHERE id = $1`, [a.id])
    await t.rejects(
      keyhole.run(admin, (db) => db.select('groups', { id: a.id }, { columns: ['invite_code'] })),
      { code: 'KH_DECRYPT_FAILED', message: /not in keyhole's format/ },
    )
    await k.db.pool.query('DELETE FROM groups WHERE id = ANY ($1)', [[a.id, b.id]])
  })

  t.test(`${mode}: key rotation, and reencrypt moves old values to the current key`, async (t) => {
    const old = await newGroup(keyhole)
    const old2 = await newGroup(keyhole)
    const rotated = keyholeFor(mode, dataKeys({ current: keyB, previous: [keyA] }))
    const admin = old.admin
    const [read] = await rotated.run(admin, (db) => db.select('groups', { id: old.id }))
    t.equal(read?.invite_code, old.row.invite_code, 'an old value still reads')
    const [found] = await rotated.run(admin, (db) => db.select('groups', { email: old.row.email }))
    t.equal(found?.id, old.id, "the old key's blind index still finds it")
    const fresh = await newGroup(rotated)
    t.equal((await stored('groups', 'id', fresh.id)).invite_code!.split('.')[1], deriveKeyId(keyB))

    const system = { reason: 'rotate', tables: ['groups'], operations: ['read', 'update'] } as const
    const moved = await rotated.runAsSystem(system, (db) =>
      reencrypt(db, { table: 'groups', batchSize: 1 }),
    )
    t.ok(moved.rows >= 2, `moved ${moved.rows} rows`)
    const keyIds = await k.db.pool.query(
      `SELECT DISTINCT split_part(invite_code, '.', 2) AS id FROM groups WHERE invite_code IS NOT NULL`,
    )
    t.same(keyIds.rows, [{ id: deriveKeyId(keyB) }], 'every value under the current key')
    t.same(
      await rotated.runAsSystem(system, (db) => reencrypt(db, { table: 'groups' })),
      {
        rows: 0,
      },
      'idempotent',
    )

    const only = keyholeFor(mode, dataKeys({ current: keyB }))
    const [after] = await only.run(admin, (db) => db.select('groups', { email: old2.row.email }))
    t.same(after?.invite_code, old2.row.invite_code, 'read and found with the new key alone')
    await t.rejects(
      keyhole.run(admin, (db) => db.select('groups', { id: old.id })),
      {
        code: 'KH_DECRYPT_FAILED',
        message: /no data key has the ID/,
      },
    )
  })
}

t.test('raw SQL as the runtime role sees only ciphertext', async (t) => {
  const keyhole = keyholeFor('rls')
  const { id, row, admin } = await newGroup(keyhole)
  const { rows } = await keyhole.run(admin, (db) =>
    db.query(sql`SELECT invite_code, email FROM groups WHERE id = ${id}`),
  )
  t.match(rows, [{ invite_code: /^kh1\./, email: /^kh1\./ }])
  t.notMatch(JSON.stringify(rows), row.invite_code)
  t.notMatch(JSON.stringify(rows), row.email)
})

t.test('reencrypt checks its arguments', async (t) => {
  const keyhole = keyholeFor('guard')
  const admin = keyhole.capability({ subject: 'admin', admin: true })
  const bad: [string, (db: PolicyHandle) => Promise<unknown>][] = [
    ['a plain object', () => reencrypt({} as never, { table: 'groups' })],
    ['null', () => reencrypt(null as never, { table: 'groups' })],
    ['a table without encrypted columns', (db) => reencrypt(db, { table: 'plain_groups' })],
    ['no options', (db) => reencrypt(db, undefined as never)],
    ['a bad batch size', (db) => reencrypt(db, { table: 'groups', batchSize: 0 })],
  ]
  for (const [what, work] of bad) {
    await t.rejects(keyhole.run(admin, work), { code: 'KH_INVALID_OPTIONS' }, what)
  }
})

t.test('a missing data key is refused at start-up, never on the first row', async (t) => {
  const saved = { key: process.env.KEYHOLE_DATA_KEY, keys: process.env.KEYHOLE_DATA_KEYS }
  t.teardown(() => {
    for (const [name, value] of [
      ['KEYHOLE_DATA_KEY', saved.key],
      ['KEYHOLE_DATA_KEYS', saved.keys],
    ] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
  delete process.env.KEYHOLE_DATA_KEY
  delete process.env.KEYHOLE_DATA_KEYS
  const options = { pool: k.db.pool, policies: encryptedPolicies, mode: 'guard' } as const
  t.throws(() => createKeyhole(options), {
    code: 'KH_DATA_KEY_MISSING',
    message: /set KEYHOLE_DATA_KEY .* or give dataKeys/,
  })
  t.throws(
    () => createKeyhole({ ...options, dataKeys: { currentKeyId: 'k', key: () => undefined } }),
    { code: 'KH_DATA_KEY_MISSING' },
  )
  t.throws(() => createKeyhole({ ...options, dataKeys: 'key' as never }), {
    code: 'KH_INVALID_OPTIONS',
    message: /dataKeys/,
  })
  const capability = createKeyhole({ ...options, dataKeys: keys }).capability({ subject: 's' })
  t.throws(() => bindPolicies(encryptedPolicies, k.db.pool, capability), {
    code: 'KH_DATA_KEY_MISSING',
  })
  // Policies without encrypted columns need no key.
  const plain = definePolicies({ plain_groups: encryptedPolicies.tables.plain_groups! })
  t.equal(createKeyhole({ ...options, policies: plain }).mode, 'guard')
  process.env.KEYHOLE_DATA_KEY = keyA.toString('base64')
  const fromEnv = createKeyhole(options)
  const { id, row, admin } = await newGroup(keyholeFor('guard'))
  const [read] = await fromEnv.run(admin, (db) => db.select('groups', { id }))
  t.equal(read?.invite_code, row.invite_code, 'KEYHOLE_DATA_KEY read at start-up')
})

t.test('encryption adds no round trip: one prepared statement, the same as without', async (t) => {
  // What the bench's read and write goals (issue 19) rest on: the cost of a sealed row is the
  // AES-GCM in the process, never another statement or a statement parsed again per call.
  const keyhole = keyholeFor('guard')
  const { id, row } = await newGroup(keyhole)
  const plainId = randomUUID()
  await k.db.pool.query(`INSERT INTO plain_groups (id, name) VALUES ($1, 'plain')`, [plainId])
  const sent: { name?: string | undefined; text: string }[] = []
  const counting = {
    query(config: { name?: string; text: string; values?: unknown[] }) {
      sent.push({ name: config.name, text: config.text })
      return k.db.pool.query(config)
    },
  }
  const capability = keyhole.capability({
    subject: 'mod',
    groups: { moderator: [id], member: [plainId] },
  })
  const db = bindPolicies(encryptedPolicies, counting, capability, {
    mode: 'guard',
    dataKeys: keys,
  })
  for (let i = 0; i < 2; i++) {
    t.same(await db.select('groups', { id }, { columns: ['id', 'invite_code'] }), [
      { id, invite_code: i === 0 ? row.invite_code : 'code 0' },
    ])
    t.match(await db.update('groups', { id }, { invite_code: `code ${i}` }), {
      rows: [{ invite_code: `code ${i}` }],
    })
    await db.select('plain_groups', { id: plainId }, { columns: ['id', 'invite_code'] })
  }
  t.equal(sent.length, 6, 'one statement per call')
  t.ok(
    sent.every((s) => s.name?.startsWith('keyhole_')),
    'each a named (prepared) statement',
  )
  t.same(sent.slice(3), sent.slice(0, 3), 'the second round sends the same names and texts')
  t.equal(
    sent[0]!.text.replace('"groups"', '"plain_groups"'),
    sent[2]!.text,
    'the sealed select is the plain one on another table',
  )
})
