/**
 * The `keyhole` schema seen from the RUNTIME role, with raw SQL (what an injection could send): a
 * missing, forged, tampered, expired or replayed setting reads and changes nothing, and never
 * raises; set_capability refuses what the application did not sign; the key and the policies are
 * out of reach. Every attack on the stored capability runs against both stores (sql/000004): the
 * sealed `backtrace_functions` (setup granted the migration role SET on it; the capability beside
 * it in `keyhole.capability`, bound by its SHA-256) and the signed `keyhole.capability` (the grant
 * revoked, as on PostgreSQL 14 or a managed server), each installed as setup installs it.
 */
import { createHmac } from 'node:crypto'
import pg from 'pg'
import t, { type Test as Tap } from 'tap'
import { createCapabilitySigner } from '../../src/db/sign-capability.ts'
import { capability, createKeyholeDatabase, onParameterPrivileges } from './helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)
const runtime = new pg.Client({ connectionString: k.runtimeUrl })
await runtime.connect()
t.teardown(() => runtime.end())
const signer = createCapabilitySigner(k.signingKey)
const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })

/** In one transaction as the runtime role: optionally set `value`, then run each statement. */
async function inTransaction(value: string | undefined, ...statements: string[]) {
  await runtime.query('BEGIN')
  try {
    if (value !== undefined) {
      await runtime.query('SELECT keyhole.set_capability($1)', [value])
    }
    const results = []
    for (const s of statements) results.push((await runtime.query(s)).rows)
    return results
  } finally {
    await runtime.query('ROLLBACK')
  }
}

const probe = [
  'SELECT body FROM notes ORDER BY id',
  `SELECT keyhole.group_ids('member') AS groups, keyhole.is_admin() AS admin, keyhole.subject() AS subject`,
  `UPDATE notes SET body = 'x' RETURNING id`,
  'DELETE FROM notes RETURNING id',
]
const nothing = [[], [{ groups: [], admin: false, subject: null }], [], []]

t.test('set_capability refuses anything but a fresh value the application signed', async (t) => {
  const valid = signer.sign(alice)
  const [mac, body] = [valid.slice(0, 64), valid.slice(64)]
  const flip = (text: string, at: number) =>
    `${text.slice(0, at)}${text[at] === 'a' ? 'b' : 'a'}${text.slice(at + 1)}`
  const ownKey = (text: string) =>
    createHmac('sha256', Buffer.alloc(32, 7)).update(`a.${text}`).digest('hex')
  const cases: [string, string | null][] = [
    ['NULL', null],
    ['empty', ''],
    ['garbage', 'not a capability'],
    ['signed with another key', createCapabilitySigner(Buffer.alloc(32, 7)).sign(alice)],
    ['body altered (admin: true)', mac + body.slice(0, 27) + '1' + body.slice(28)],
    ['body altered (another group)', mac + body.replace(k.groupA, k.groupB)],
    ['body altered (its exp)', mac + body.slice(0, 15) + '9'.repeat(12) + body.slice(27)],
    ['signature altered', flip(mac, 10) + body],
    ['signature in capitals', mac.toUpperCase() + body],
    ['signature missing', body],
    ['signature only', mac],
    ['forged with a key of its own', ownKey(body) + body],
    ['SQL in it', `'); SELECT 1; --${body}`],
    [
      'expired token',
      signer.sign(capability({ subject: 'alice', groups: { member: [k.groupA] }, expiresAt: 1 })),
    ],
    ['issued two minutes ago', signer.sign(alice, Date.now() - 120_000)],
    ['issued two minutes ahead', signer.sign(alice, Date.now() + 120_000)],
  ]
  for (const [name, value] of cases) {
    await runtime.query('BEGIN')
    await t.rejects(
      runtime.query('SELECT keyhole.set_capability($1)', [value]),
      { code: '28000', message: 'keyhole: the signed capability was refused' },
      name,
    )
    // Refused means the transaction is aborted: nothing after it runs without the capability.
    await t.rejects(runtime.query(probe[0]!), { code: '25P02' }, `${name}: the rest is not run`)
    await runtime.query('ROLLBACK')
  }
})

type Store = 'sealed' | 'signed'
/** Where each store keeps the verified capability. */
const settingOf = { sealed: 'backtrace_functions', signed: 'keyhole.capability' } as const

/**
 * The migration role (owner of set_capability) with or without SET on backtrace_functions, and the
 * variant that privilege allows installed, as setup does (sql/000004).
 */
async function useStore(store: Store) {
  await onParameterPrivileges(
    k.db.pool,
    store === 'sealed'
      ? `GRANT SET ON PARAMETER backtrace_functions TO ${k.migrator.name}`
      : `REVOKE SET ON PARAMETER backtrace_functions FROM ${k.migrator.name}`,
  )
  const migrator = new pg.Client({ connectionString: k.migratorUrl })
  await migrator.connect()
  try {
    const { rows } = await migrator.query('SELECT keyhole.install_capability_store() AS store')
    if (rows[0].store !== store) throw new Error(`installed ${rows[0].store}, not ${store}`)
  } finally {
    await migrator.end()
  }
}

/** A new connection of the runtime role, ended at teardown. */
async function connectRuntime(t: Tap) {
  const client = new pg.Client({ connectionString: k.runtimeUrl })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

for (const store of ['sealed', 'signed'] as const) {
  const setting = settingOf[store]
  const other = settingOf[store === 'sealed' ? 'signed' : 'sealed']

  t.test(`the ${store} store`, async (t) => {
    await useStore(store)

    t.test(
      'a valid signed capability opens exactly its groups, stored in this store',
      async (t) => {
        const signed = signer.sign(alice)
        const [rows, fns, stored] = await inTransaction(
          signed,
          ...probe.slice(0, 2),
          `SELECT current_setting('${setting}', true) AS here, current_setting('${other}', true) AS there`,
        )
        t.same(rows, [{ body: 'a' }])
        t.same(fns, [{ groups: [k.groupA], admin: false, subject: 'alice' }])
        if (store === 'sealed') {
          // Constant size: the body's head and its SHA-256; the body itself in keyhole.capability.
          t.match(stored, [{ here: /^keyhole_\d+_\d+_\d{28}_[0-9a-f]{64}$/ }])
          t.equal(stored?.[0]?.there, signed.slice(64), 'the body beside it')
        } else {
          t.match(stored, [{ here: /^[0-9a-f]{64}/ }])
          t.notOk(stored?.[0]?.there, `nothing in ${other}`)
        }
        t.same(
          (await runtime.query(`SELECT current_setting('${setting}', true) AS s`)).rows,
          [{ s: '' }],
          "after ROLLBACK the setting reads back as ''",
        )
      },
    )

    t.test(
      'role hierarchy: group_ids(role) holds the groups of that role or a higher one',
      async (t) => {
        const holder = capability({ groups: { member: [k.groupA], moderator: [k.groupB] } })
        const [rows] = await inTransaction(
          signer.sign(holder),
          `SELECT ARRAY(SELECT unnest(keyhole.group_ids('member')) ORDER BY 1) AS member, keyhole.group_ids('moderator') AS moderator,
           keyhole.group_ids('admin') AS admin, keyhole.group_ids('owner') AS unknown`,
        )
        t.same(rows, [
          { member: [k.groupA, k.groupB].sort(), moderator: [k.groupB], admin: [], unknown: [] },
        ])
      },
    )

    t.test('an admin sees every group', async (t) => {
      const [rows, fns] = await inTransaction(
        signer.sign(capability({ admin: true })),
        probe[0]!,
        'SELECT keyhole.is_admin() AS admin',
      )
      t.same(rows, [{ body: 'a' }, { body: 'b' }])
      t.same(fns, [{ admin: true }])
    })

    t.test('without a valid setting: no rows, no changes, no error', async (t) => {
      const cases: [string, string | undefined][] = [
        ['never set', undefined],
        ['empty', ''],
        ['garbage', 'not a capability'],
        ['an HMAC of zeros before a body', `${'0'.repeat(64)}${'0'.repeat(27)}{"s":"x","a":true}`],
      ]
      for (const [name, value] of cases) {
        await runtime.query('BEGIN')
        if (value !== undefined) {
          await runtime.query(`SELECT set_config('keyhole.capability', $1, true)`, [value])
        }
        const results = []
        for (const p of probe) results.push((await runtime.query(p)).rows)
        await runtime.query('ROLLBACK')
        t.same(results, nothing, name)
      }
    })

    t.test('a capability that expires during a long transaction is gone', async (t) => {
      const soon = capability({
        subject: 'alice',
        groups: { member: [k.groupA] },
        admin: true,
        expiresAt: Math.floor(Date.now() / 1000) + 1,
      })
      const fns = `SELECT keyhole.group_ids('member') AS groups, keyhole.is_admin() AS admin, keyhole.subject() AS subject`
      const [before, beforeFns, , after, afterFns] = await inTransaction(
        signer.sign(soon),
        probe[0]!,
        fns,
        // Past the token's exp (whole seconds) whatever the fraction was.
        'SELECT pg_sleep(1.5)',
        probe[0]!,
        fns,
      )
      t.same(before, [{ body: 'a' }, { body: 'b' }])
      t.same(beforeFns, [{ groups: [k.groupA], admin: true, subject: 'alice' }])
      t.same(after, [])
      t.same(afterFns, [{ groups: [], admin: false, subject: null }])
    })

    t.test('raw set_config of a forged value is ignored or refused', async (t) => {
      const body = `${'0'.repeat(27)}1{"member"}\n{1}\n{"${k.groupA}"}\n"alice"`
      await runtime.query('BEGIN')
      await runtime.query(`SELECT set_config('keyhole.capability', $1, true)`, [
        '0'.repeat(64) + body,
      ])
      t.same((await runtime.query(probe[0]!)).rows, [], 'keyhole.capability: ignored')
      const { rows } = await runtime.query(`SELECT pg_backend_pid() AS pid,
        (EXTRACT(epoch FROM transaction_timestamp()) * 1000000)::bigint AS us`)
      const sealed = `keyhole_${rows[0].pid}_${rows[0].us}_${Buffer.from(body).toString('hex')}`
      await t.rejects(
        runtime.query(`SELECT set_config('backtrace_functions', $1, true)`, [sealed]),
        { code: '42501', message: 'permission denied to set parameter "backtrace_functions"' },
        'backtrace_functions: refused, even bound to this transaction',
      )
      await runtime.query('ROLLBACK')
    })

    t.test('the runtime role cannot write backtrace_functions in any way', async (t) => {
      const writes = [
        `SET backtrace_functions = 'keyhole_1_1_31'`,
        `SET LOCAL backtrace_functions = 'keyhole_1_1_31'`,
        `SET SESSION backtrace_functions = 'keyhole_1_1_31'`,
        'RESET backtrace_functions',
        `SET backtrace_functions TO DEFAULT`,
        `SELECT set_config('backtrace_functions', 'keyhole_1_1_31', false)`,
        `ALTER ROLE CURRENT_USER SET backtrace_functions = 'keyhole_1_1_31'`,
        `ALTER SYSTEM SET backtrace_functions = 'keyhole_1_1_31'`,
      ]
      for (const sql of writes) {
        await runtime.query('BEGIN')
        await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
        await t.rejects(runtime.query(sql), { code: /^(42501|25001)$/ }, sql)
        await runtime.query('ROLLBACK')
      }
      await t.rejects(
        runtime.query(`ALTER SYSTEM SET backtrace_functions = 'keyhole_1_1_31'`),
        { code: '42501' },
        'ALTER SYSTEM outside a transaction',
      )
    })

    t.test('a stored value read in one transaction is worthless in the next', async (t) => {
      await runtime.query('BEGIN')
      await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
      const { rows } = await runtime.query(`SELECT current_setting('${setting}') AS bound`)
      const bound = rows[0].bound as string
      t.same((await runtime.query(probe[0]!)).rows, [{ body: 'a' }], 'bound in its own transaction')
      await runtime.query('COMMIT')
      t.same(
        (await runtime.query(`SELECT current_setting('${setting}', true) AS after`)).rows,
        [{ after: '' }],
        "after COMMIT the setting reads back as ''",
      )
      const replay = async (client: pg.Client, name: string) => {
        await client.query('BEGIN')
        if (store === 'sealed') {
          await t.rejects(
            client.query(`SELECT set_config('backtrace_functions', $1, true)`, [bound]),
            { code: '42501' },
            `${name}: refused`,
          )
        } else {
          await client.query(`SELECT set_config('keyhole.capability', $1, true)`, [bound])
          t.same((await client.query(probe[0]!)).rows, [], `${name}: no rows`)
        }
        await client.query('ROLLBACK')
      }
      await replay(runtime, 'replayed on the same connection')
      await replay(await connectRuntime(t), 'replayed on another connection')
    })

    t.test('a stored value an administrator made a role default gives nothing', async (t) => {
      await runtime.query('BEGIN')
      await runtime.query('SELECT keyhole.set_capability($1)', [
        signer.sign(capability({ admin: true })),
      ])
      const { rows } = await runtime.query(`SELECT current_setting('${setting}') AS bound`)
      await runtime.query('COMMIT')
      await k.db.pool.query(`ALTER ROLE ${k.runtime.name} SET ${setting} = $v$${rows[0].bound}$v$`)
      t.teardown(() => k.db.pool.query(`ALTER ROLE ${k.runtime.name} RESET ${setting}`))
      const client = await connectRuntime(t)
      t.same(
        (await client.query(`SELECT current_setting('${setting}') AS s`)).rows,
        [{ s: rows[0].bound }],
        'the copy is in the new session',
      )
      await client.query('BEGIN')
      const results = []
      for (const p of probe) results.push((await client.query(p)).rows)
      t.same(results, nothing, 'no capability from it')
      await client.query('ROLLBACK')
      await client.query('BEGIN')
      await client.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
      t.same((await client.query(probe[0]!)).rows, [{ body: 'a' }], 'nor beside a real one')
      await client.query('ROLLBACK')
    })

    t.test('the admin flag cannot be flipped in the stored value', async (t) => {
      await runtime.query('BEGIN')
      await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
      const { rows } = await runtime.query(`SELECT current_setting('${setting}') AS bound`)
      const bound = rows[0].bound as string
      if (store === 'sealed') {
        // The admin flag is the body's 28th character, sealed after the first 28 characters.
        const at = bound.split('_', 3).join('_').length + 1 + 27
        t.equal(bound[at], '0', 'the flag is 0')
        const flipped = `${bound.slice(0, at)}1${bound.slice(at + 1)}`
        await t.rejects(
          runtime.query(`SELECT set_config('backtrace_functions', $1, true)`, [flipped]),
          { code: '42501' },
        )
        await runtime.query('ROLLBACK')
        // The body beside the seal is writable: an edited one no longer matches the sealed SHA-256.
        const edits: [string, (b: string) => string][] = [
          ['the admin flag', (b) => `${b.slice(0, 27)}1${b.slice(28)}`],
          ['another group', (b) => b.replace(k.groupA, k.groupB)],
          ['a second group', (b) => b.replace(`{"${k.groupA}"}`, `{"${k.groupA}","${k.groupB}"}`)],
          ['a higher role', (b) => b.replace('{1,0,0}', '{1,1,1}')],
          ['another subject', (b) => b.replace('"alice"', '"bob"')],
          ['its exp', (b) => `${b.slice(0, 15)}${'9'.repeat(12)}${b.slice(27)}`],
        ]
        for (const [name, edit] of edits) {
          await runtime.query('BEGIN')
          await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
          const { rows: held } = await runtime.query(
            `SELECT current_setting('keyhole.capability') AS body`,
          )
          const edited = edit(held[0].body as string)
          t.not(edited, held[0].body, `${name}: edited`)
          await runtime.query(`SELECT set_config('keyhole.capability', $1, true)`, [edited])
          const results = []
          for (const p of probe) results.push((await runtime.query(p)).rows)
          await runtime.query('ROLLBACK')
          // is_admin reads the sealed value alone: the edited body changes nothing there either.
          t.same(results, nothing, `${name} edited in the body: no capability`)
        }
        return
      } else {
        const at = 64 + 27
        t.equal(bound[at], '0', 'the flag is 0')
        const flipped = `${bound.slice(0, at)}1${bound.slice(at + 1)}`
        await runtime.query(`SELECT set_config('keyhole.capability', $1, true)`, [flipped])
        const [rows, fns] = [
          (await runtime.query(probe[0]!)).rows,
          (await runtime.query(probe[1]!)).rows,
        ]
        t.same(rows, [], 'flipped: no capability at all')
        t.same(fns, nothing[1])
      }
      await runtime.query('ROLLBACK')
    })

    t.test("an injection's RESET ALL only drops the capability", async (t) => {
      const [before, , after, fns] = await inTransaction(
        signer.sign(alice),
        probe[0]!,
        'RESET ALL',
        probe[0]!,
        probe[1]!,
      )
      t.same(before, [{ body: 'a' }])
      t.same(after, [])
      t.same(fns, nothing[1])
    })
  })
}

t.test('a refused set_capability after an accepted one leaves nothing to use', async (t) => {
  await runtime.query('BEGIN')
  t.same(
    (await runtime.query('SELECT keyhole.set_capability($1) AS ok', [signer.sign(alice)])).rows,
    [{ ok: true }],
  )
  await t.rejects(runtime.query('SELECT keyhole.set_capability($1)', ['forged']), {
    code: '28000',
  })
  await t.rejects(runtime.query(probe[0]!), { code: '25P02' })
  await runtime.query('ROLLBACK')
})

t.test('inserts are checked too', async (t) => {
  await runtime.query('BEGIN')
  await t.rejects(
    runtime.query(`INSERT INTO notes (group_id, owner, body) VALUES ($1, 'alice', 'x')`, [
      k.groupA,
    ]),
    { code: '42501' },
    'no capability: refused by the policy',
  )
  await runtime.query('ROLLBACK')
})

t.test('the runtime role cannot reach around the capability', async (t) => {
  const refused: [string, string, string][] = [
    ['read the signing key', 'SELECT * FROM keyhole.signing_key', '42501'],
    ['call the verifier directly', 'SELECT keyhole.verified_payload()', '42501'],
    ['compute HMACs with it', `SELECT keyhole.hmac_sha256('\\x00', '\\x00', '\\x00')`, '42501'],
    ['TRUNCATE a guarded table', 'TRUNCATE notes', '42501'],
    ['CREATE in public', 'CREATE TABLE public.mine (id int)', '42501'],
    ['CREATE a schema', 'CREATE SCHEMA mine', '42501'],
    ['CREATE a temporary table', 'CREATE TEMPORARY TABLE mine (id int)', '42501'],
    ['drop a policy', 'DROP POLICY keyhole_select ON notes', '42501'],
    ['disable RLS', 'ALTER TABLE notes DISABLE ROW LEVEL SECURITY', '42501'],
    [
      'replace a keyhole function',
      `CREATE OR REPLACE FUNCTION keyhole.is_admin() RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
      '42501',
    ],
    ['add a foreign key', 'CREATE TABLE public.ref (id int REFERENCES notes)', '42501'],
  ]
  for (const [name, sql, code] of refused) {
    await t.rejects(runtime.query(sql), { code }, name)
  }
  await runtime.query('BEGIN')
  await runtime.query('SET LOCAL row_security = off')
  await t.rejects(
    runtime.query('SELECT * FROM notes'),
    { code: '42501' },
    'row_security = off fails closed',
  )
  await runtime.query('ROLLBACK')
})
