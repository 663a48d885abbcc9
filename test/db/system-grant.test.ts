/**
 * The signed system grant (sql/000002.do.keyhole-system.sql) seen from the RUNTIME role with raw
 * SQL, as an injection would send it: a valid grant crosses groups only on the tables and
 * operations it lists AND the policies declare for `system`; a forged, widened, replayed, kept
 * or crossed-over value grants nothing and never raises; set_system refuses what the application
 * did not sign.
 */
import { createHmac } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { migrate } from '../../src/db/migrate.ts'
import { createCapabilitySigner } from '../../src/db/sign-capability.ts'
import { capability, createKeyholeDatabase } from './helpers/keyhole.ts'
import { createSystemDatabase } from './helpers/system-database.ts'

const k = await createSystemDatabase(t)
const runtime = new pg.Client({ connectionString: k.runtimeUrl })
await runtime.connect()
t.teardown(() => runtime.end())
const signer = createCapabilitySigner(k.signingKey)
const grant = ['read:notes', 'delete:notes']

const probe = {
  notes: 'SELECT body FROM notes ORDER BY id',
  invitations: 'SELECT email FROM invitations ORDER BY id',
  secrets: 'SELECT body FROM secrets ORDER BY id',
  update: `UPDATE notes SET body = 'x' RETURNING id`,
  delete: 'DELETE FROM notes RETURNING id',
  capability: `SELECT keyhole.group_ids('member') AS groups, keyhole.is_admin() AS admin, keyhole.subject() AS subject`,
}
const bothNotes = [{ body: 'note a' }, { body: 'note b' }]

/** In one transaction, rolled back: set the grant (when given), then each statement's rows. */
async function asSystem(value: string | undefined, ...statements: string[]) {
  await runtime.query('BEGIN')
  try {
    if (value !== undefined) await runtime.query('SELECT keyhole.set_system($1)', [value])
    const results = []
    for (const s of statements) results.push((await runtime.query(s)).rows)
    return results
  } finally {
    await runtime.query('ROLLBACK')
  }
}

/** What an injection sees after writing `value` into `setting` itself: every probe. */
async function withSetting(setting: string, value: string) {
  await runtime.query('BEGIN')
  try {
    await runtime.query(`SELECT set_config($1, $2, true)`, [setting, value])
    return {
      notes: (await runtime.query(probe.notes)).rows,
      secrets: (await runtime.query(probe.secrets)).rows,
      deleted: (await runtime.query(probe.delete)).rows,
    }
  } finally {
    await runtime.query('ROLLBACK')
  }
}
const nothing = { notes: [], secrets: [], deleted: [] }

/** The bound value of a valid grant, as an injection inside that transaction can read it. */
async function boundValue(): Promise<string> {
  await runtime.query('BEGIN')
  await runtime.query('SELECT keyhole.set_system($1)', [signer.signSystem(grant)])
  const { rows } = await runtime.query(`SELECT current_setting('keyhole.system') AS bound`)
  await runtime.query('COMMIT')
  return rows[0].bound as string
}

t.test('a grant crosses groups on what it lists and the policies declare', async (t) => {
  const [notes, deleted] = await asSystem(signer.signSystem(grant), probe.notes, probe.delete)
  t.same(notes, bothNotes, 'read:notes: both groups')
  t.equal(deleted!.length, 2, 'delete:notes: both groups')
  const [invitations, secrets, updated, fns] = await asSystem(
    signer.signSystem(grant),
    probe.invitations,
    probe.secrets,
    probe.update,
    probe.capability,
  )
  t.same(invitations, [], 'invitations declare system read, but the grant does not list it')
  t.same(secrets, [], 'secrets declare no system operation')
  t.same(updated, [], 'notes declare no system update')
  t.same(fns, [{ groups: [], admin: false, subject: null }], 'no group, no admin, no subject')
})

t.test('a validly signed grant wider than the policies gets only what they declare', async (t) => {
  const wide = signer.signSystem(['read:secrets', 'update:notes', 'read:notes', 'insert:notes'])
  const [secrets, updated, notes] = await asSystem(wide, probe.secrets, probe.update, probe.notes)
  t.same(secrets, [], 'read:secrets is not declared for system')
  t.same(updated, [], 'update:notes is not declared for system')
  t.same(notes, bothNotes)
  await runtime.query('BEGIN')
  await runtime.query('SELECT keyhole.set_system($1)', [wide])
  await t.rejects(
    runtime.query(`INSERT INTO notes (group_id, body) VALUES ($1, 'x')`, [k.groupA]),
    { code: '42501' },
    'insert:notes is not declared for system: no policy admits it',
  )
  await runtime.query('ROLLBACK')
})

t.test('without a grant the system branch admits nothing', async (t) => {
  const [notes, allowed] = await asSystem(
    undefined,
    probe.notes,
    `SELECT keyhole.system_allows('notes', 'read') AS allowed`,
  )
  t.same(notes, [])
  t.same(allowed, [{ allowed: false }])
  // A user's capability is unchanged by the system branch: alice reads group A's rows only.
  const alice = capability({ subject: 'alice', groups: { member: [k.groupA] } })
  await runtime.query('BEGIN')
  await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
  t.same((await runtime.query(probe.notes)).rows, [{ body: 'note a' }])
  t.same((await runtime.query(probe.delete)).rows, [], 'a member deletes nothing')
  await runtime.query('ROLLBACK')
})

t.test('set_system refuses anything but a fresh grant the application signed', async (t) => {
  const valid = signer.signSystem(grant)
  const [mac, body] = [valid.slice(0, 64), valid.slice(64)]
  const ownKey = (text: string, prefix = 's.') =>
    createHmac('sha256', Buffer.alloc(32, 7)).update(`${prefix}${text}`).digest('hex')
  const alice = capability({ subject: 'alice', admin: true })
  const cases: [string, string | null][] = [
    ['NULL', null],
    ['empty', ''],
    ['garbage', 'not a grant'],
    ['signed with another key', createCapabilitySigner(Buffer.alloc(32, 7)).signSystem(grant)],
    ['widened: a table added', mac + body.replace('}', ',"read:secrets"}')],
    ['widened: an operation changed', mac + body.replace('delete:notes', 'update:notes')],
    ['signature in capitals', mac.toUpperCase() + body],
    ['signature missing', body],
    ['forged with a key of its own', ownKey(body) + body],
    ["a user's capability (an admin's)", signer.sign(alice)],
    ['issued two minutes ago', signer.signSystem(grant, Date.now() - 120_000)],
    ['issued two minutes ahead', signer.signSystem(grant, Date.now() + 120_000)],
  ]
  for (const [name, value] of cases) {
    await runtime.query('BEGIN')
    await t.rejects(
      runtime.query('SELECT keyhole.set_system($1)', [value]),
      { code: '28000', message: 'keyhole: the signed system context was refused' },
      name,
    )
    await t.rejects(runtime.query(probe.notes), { code: '25P02' }, `${name}: the rest is not run`)
    await runtime.query('ROLLBACK')
  }
  await runtime.query('BEGIN')
  await t.rejects(
    runtime.query('SELECT keyhole.set_capability($1)', [valid]),
    { code: '28000' },
    'a system grant is not a capability',
  )
  await runtime.query('ROLLBACK')
})

t.test('a grant written into the setting by the runtime role grants nothing', async (t) => {
  const bound = await boundValue()
  const [mac, body] = [bound.slice(0, 64), bound.slice(64)]
  const cases: [string, string][] = [
    ['forged: zeros for an HMAC', `${'0'.repeat(64)}${body}`],
    ['forged: a grant of its own', `${'0'.repeat(64)}001700000000000{"read:secrets"}`],
    ['widened bound value', mac + body.replace('}', ',"read:secrets"}')],
    ['replayed in a later transaction', bound],
    ['garbage', 'not a grant'],
    ['empty', ''],
  ]
  for (const [name, value] of cases) {
    t.same(await withSetting('keyhole.system', value), nothing, name)
  }
  t.same(
    await withSetting('keyhole.capability', bound),
    nothing,
    'a bound grant put where the capability goes',
  )
  const alice = capability({ subject: 'alice', admin: true })
  await runtime.query('BEGIN')
  await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
  const { rows } = await runtime.query(`SELECT current_setting('keyhole.capability') AS bound`)
  await runtime.query('ROLLBACK')
  t.same(
    await withSetting('keyhole.system', rows[0].bound),
    nothing,
    "an admin's bound capability put where the grant goes",
  )
})

t.test('a bound grant replayed on another connection grants nothing', async (t) => {
  const bound = await boundValue()
  const other = new pg.Client({ connectionString: k.runtimeUrl })
  await other.connect()
  t.teardown(() => other.end())
  await other.query('BEGIN')
  await other.query(`SELECT set_config('keyhole.system', $1, true)`, [bound])
  t.same((await other.query(probe.notes)).rows, [])
  await other.query('ROLLBACK')
})

t.test('a session-level copy of the grant is worthless after its transaction', async (t) => {
  await runtime.query('BEGIN')
  await runtime.query('SELECT keyhole.set_system($1)', [signer.signSystem(grant)])
  await runtime.query(
    `SELECT set_config('keyhole.system', current_setting('keyhole.system'), false)`,
  )
  t.same((await runtime.query(probe.notes)).rows, bothNotes, 'in its own transaction')
  await runtime.query('COMMIT')
  const { rows } = await runtime.query(`SELECT current_setting('keyhole.system') AS kept`)
  t.not(rows[0].kept, '', 'the copy outlived the transaction')
  t.same((await runtime.query(probe.notes)).rows, [], 'in autocommit after it')
  await runtime.query('BEGIN')
  t.same((await runtime.query(probe.notes)).rows, [], 'in the next transaction')
  t.same((await runtime.query(probe.delete)).rows, [], 'nothing deleted')
  await runtime.query('ROLLBACK')
  await runtime.query('RESET keyhole.system')
})

t.test('the runtime role cannot reach around the grant', async (t) => {
  for (const sql of [
    `CREATE OR REPLACE FUNCTION keyhole.system_allows(tab text, operation text) RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
    'ALTER FUNCTION keyhole.set_system(text) SECURITY INVOKER',
    `ALTER POLICY keyhole_select ON secrets USING (true)`,
  ]) {
    await t.rejects(runtime.query(sql), { code: '42501' }, sql)
  }
})

t.test(
  'a database set up before 000002 gets it, grants included, from keyhole migrate',
  async (t) => {
    const old = await createKeyholeDatabase(t)
    const migrator = new pg.Client({ connectionString: old.migratorUrl })
    await migrator.connect()
    t.teardown(() => migrator.end())
    // As it was with 000001 only: no system functions, version 2 not recorded.
    await migrator.query(`DROP FUNCTION keyhole.set_system(text);
      DROP FUNCTION keyhole.system_allows(text, text);
      DROP FUNCTION keyhole.install_capability_store();
      DROP FUNCTION keyhole.sets_unique_key(regclass, name[]);
      DELETE FROM keyhole.schemaversion WHERE version >= 2`)
    t.same(await migrate(old.migratorUrl), {
      keyhole: [2, 3, 4, 5],
      application: [],
      policies: false,
      repairs: [],
    })
    const client = new pg.Client({ connectionString: old.runtimeUrl })
    await client.connect()
    t.teardown(() => client.end())
    const value = createCapabilitySigner(old.signingKey).signSystem(['read:notes'])
    await client.query('BEGIN')
    const { rows } = await client.query(
      `SELECT keyhole.set_system($1) AS set, keyhole.system_allows('notes', 'read') AS allowed`,
      [value],
    )
    await client.query('ROLLBACK')
    t.same(rows, [{ set: true, allowed: true }], 'the runtime role may call both')
    const grants = await migrator.query(
      `SELECT has_function_privilege('public', 'keyhole.set_system(text)', 'EXECUTE') AS public`,
    )
    t.same(grants.rows, [{ public: false }], 'not PUBLIC')
  },
)
