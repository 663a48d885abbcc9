/**
 * The `keyhole` schema seen from the RUNTIME role, with raw SQL (what an injection could send): a
 * missing, forged, tampered, expired, stale or replayed capability reads and changes nothing, and
 * never raises; the key and the policies are out of reach.
 */
import { createHmac } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { createCapabilitySigner } from '../../src/db/sign-capability.ts'
import { capability, createKeyholeDatabase } from './helpers/keyhole.ts'

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

t.test('a valid signed capability opens exactly its groups', async (t) => {
  const [rows, fns] = await inTransaction(signer.sign(alice), ...probe.slice(0, 2))
  t.same(rows, [{ body: 'a' }])
  t.same(fns, [{ groups: [k.groupA], admin: false, subject: 'alice' }])
  t.same(
    (await runtime.query(`SELECT current_setting('keyhole.capability', true) AS s`)).rows,
    [{ s: '' }],
    "after ROLLBACK the setting reads back as ''",
  )
})

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
  const [rows] = await inTransaction(signer.sign(capability({ admin: true })), probe[0]!)
  t.same(rows, [{ body: 'a' }, { body: 'b' }])
})

t.test('without a valid capability: no rows, no changes, no error', async (t) => {
  const valid = signer.sign(alice)
  const [payload, mac] = valid.split('.') as [string, string]
  const forgedPayload = Buffer.from(
    Buffer.from(payload, 'base64url').toString().replace('"a":false', '"a":true '),
  ).toString('base64url')
  const wrongKey = createCapabilitySigner(Buffer.alloc(32, 7)).sign(alice)
  const hmac = (text: string) =>
    createHmac('sha256', Buffer.alloc(32, 7)).update(text).digest('base64url')
  const cases: [string, string | undefined][] = [
    ['never set', undefined],
    ['empty', ''],
    ['garbage', 'not a capability'],
    ['signed with another key', wrongKey],
    ['payload altered (admin: true)', `${forgedPayload}.${mac}`],
    // Alter a character in the middle: every bit of it counts (the last ones carry spare bits).
    [
      'signature altered',
      `${payload}.${mac.slice(0, 10)}${mac[10] === 'A' ? 'B' : 'A'}${mac.slice(11)}`,
    ],
    ['signature missing', `${payload}.`],
    ['three parts', `${valid}.x`],
    ['payload of length 4n+1', `${payload}A.${mac}`],
    ['forged with a key of its own', `${payload}.${hmac(`a.${payload}`)}`],
    ['SQL in it', `'); SELECT 1; --.${mac}`],
    [
      'expired token',
      signer.sign(capability({ subject: 'alice', groups: { member: [k.groupA] }, expiresAt: 1 })),
    ],
    ['issued two minutes ago', signer.sign(alice, Date.now() - 120_000)],
    ['issued two minutes ahead', signer.sign(alice, Date.now() + 120_000)],
  ]
  for (const [name, value] of cases) {
    t.same(await inTransaction(value, ...probe), nothing, name)
  }
})

t.test('raw set_config of a forged bound value is ignored', async (t) => {
  const body = `{"v":1,"i":0,"s":"alice","a":true,"r":["member"],"g":[[]],"e":null}`
  await runtime.query('BEGIN')
  await runtime.query(`SELECT set_config('keyhole.capability', $1, true)`, ['0'.repeat(64) + body])
  t.same((await runtime.query(probe[0]!)).rows, [])
  await runtime.query('ROLLBACK')
})

t.test('a bound value read in one transaction is worthless in the next', async (t) => {
  await runtime.query('BEGIN')
  await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
  const { rows } = await runtime.query(`SELECT current_setting('keyhole.capability') AS bound`)
  const bound = rows[0].bound as string
  t.same((await runtime.query(probe[0]!)).rows, [{ body: 'a' }], 'bound in its own transaction')
  await runtime.query('COMMIT')
  t.same(
    (await runtime.query(`SELECT current_setting('keyhole.capability', true) AS after`)).rows,
    [{ after: '' }],
    "after COMMIT the setting reads back as ''",
  )
  await runtime.query('BEGIN')
  await runtime.query(`SELECT set_config('keyhole.capability', $1, true)`, [bound])
  t.same((await runtime.query(probe[0]!)).rows, [], 'replayed on the same connection')
  await runtime.query('ROLLBACK')
  const other = new pg.Client({ connectionString: k.runtimeUrl })
  await other.connect()
  t.teardown(() => other.end())
  await other.query('BEGIN')
  await other.query(`SELECT set_config('keyhole.capability', $1, true)`, [bound])
  t.same((await other.query(probe[0]!)).rows, [], 'replayed on another connection')
  await other.query('ROLLBACK')
})

t.test('a refused set_capability clears a capability set before it', async (t) => {
  await runtime.query('BEGIN')
  t.same(
    (await runtime.query('SELECT keyhole.set_capability($1) AS ok', [signer.sign(alice)])).rows,
    [{ ok: true }],
  )
  t.same((await runtime.query('SELECT keyhole.set_capability($1) AS ok', ['forged'])).rows, [
    { ok: false },
  ])
  t.same((await runtime.query(probe[0]!)).rows, [])
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
