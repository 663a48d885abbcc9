/**
 * keyhole without HTTP: a worker runs guarded statements under a user's capability on the runtime
 * role's pool, in 'rls' and in 'guard' mode, and gets exactly that user's rights: other groups'
 * rows invisible, writes outside refused, nothing committed when the work throws, nothing of the
 * capability left on the connection afterwards.
 */
import pg from 'pg'
import t from 'tap'
import { createKeyhole, type CreateKeyholeOptions } from '../../src/db/create-keyhole.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { and, inGroup, isSubject } from '../../src/sql/guard.ts'
import { createKeyholeDatabase, notesPolicies } from './helpers/keyhole.ts'
import { nativePool } from '../behaviour/helpers/bad-options.ts'

const k = await createKeyholeDatabase(t)

// 'guard' mode runs on tables without row-level security: a copy of notes in its own schema.
const plainPolicies = definePolicies({
  'plain.notes': {
    read: inGroup('group_id', 'member'),
    insert: and(inGroup('group_id', 'member'), isSubject('owner')),
    update: inGroup('group_id', 'moderator'),
    delete: inGroup('group_id', 'moderator'),
  },
})
await k.db.pool.query(`
  CREATE SCHEMA plain;
  CREATE TABLE plain.notes (LIKE public.notes INCLUDING ALL);
  INSERT INTO plain.notes SELECT * FROM public.notes;
  GRANT USAGE ON SCHEMA plain TO ${k.runtime.name};
  GRANT SELECT, INSERT, UPDATE, DELETE ON plain.notes TO ${k.runtime.name};
  GRANT USAGE ON SEQUENCE notes_id_seq TO ${k.runtime.name};
`)

const modes = [
  {
    mode: 'rls' as const,
    table: 'notes',
    options: (pool: CreateKeyholeOptions['pool']) => ({
      pool,
      policies: notesPolicies,
      signingKey: k.signingKey,
    }),
  },
  {
    mode: 'guard' as const,
    table: 'plain.notes',
    options: (pool: CreateKeyholeOptions['pool']) => ({
      pool,
      policies: plainPolicies,
      mode: 'guard' as const,
    }),
  },
]

const bodies = async (table: string) =>
  (await k.db.pool.query<{ body: string }>(`SELECT body FROM ${table} ORDER BY id`)).rows.map(
    (r) => r.body,
  )

for (const { mode, table, options } of modes) {
  t.test(`${mode} mode: a worker acting for a user gets exactly that user's rights`, async (t) => {
    const pool = k.runtimePool(1)
    const keyhole = createKeyhole(options(pool))
    t.equal(keyhole.mode, mode)
    const alice = keyhole.capability({ subject: 'alice', groups: { member: [k.groupA] } })

    t.test('reads: the other group’s rows are invisible', async (t) => {
      const rows = await keyhole.run(alice, (db) => db.select(table, {}, { columns: ['body'] }))
      t.same(rows, [{ body: 'a' }])
      const asked = await keyhole.run(alice, (db) => db.select(table, { group_id: k.groupB }))
      t.same(asked, [])
    })

    t.test('writes outside the capability are refused; inside, committed', async (t) => {
      await t.rejects(
        keyhole.run(alice, (db) =>
          db.insert(table, { group_id: k.groupB, owner: 'alice', body: 'intruder' }),
        ),
        { code: 'KH_CAPABILITY_DENIED', statusCode: 404, table, operation: 'insert' },
      )
      await t.rejects(
        keyhole.run(alice, (db) => db.delete(table, { body: 'a' })),
        { code: 'KH_CAPABILITY_DENIED', statusCode: 403, operation: 'delete' },
        'a member may not delete, and sees the row: 403',
      )
      const inserted = await keyhole.run(alice, (db) =>
        db.insert<{ body: string }>(table, { group_id: k.groupA, owner: 'alice', body: 'kept' }),
      )
      t.equal(inserted.body, 'kept')
      t.same(await bodies(table), ['a', 'b', 'kept'])
      await k.db.pool.query(`DELETE FROM ${table} WHERE body = 'kept'`)
    })

    t.test('a throw rolls back everything the work did, and is rethrown', async (t) => {
      const failure = new Error('the job failed')
      await t.rejects(
        keyhole.run(alice, async (db) => {
          await db.insert(table, { group_id: k.groupA, owner: 'alice', body: 'lost' })
          throw failure
        }),
        failure,
      )
      t.same(await bodies(table), ['a', 'b'])
    })

    t.test(
      'a statement failure the work caught: COMMIT answers ROLLBACK, run rejects',
      async (t) => {
        await t.rejects(
          keyhole.run(alice, async (db) => {
            await db.insert(table, { group_id: k.groupA, owner: 'alice', body: 'lost too' })
            await db.select(table, { no_such_column: 1 }).catch(() => undefined)
            return 'done'
          }),
          /rolled back/,
        )
        t.same(await bodies(table), ['a', 'b'])
      },
    )

    t.test('afterwards the connection holds nothing of the capability', async (t) => {
      // The pool has one connection: this runs on the one the work used.
      const { rows } = await pool.query(
        `SELECT current_setting('keyhole.capability', true) AS capability, keyhole.subject() AS subject,
                pg_current_xact_id_if_assigned() IS NULL AS idle`,
      )
      t.notOk(
        rows[0].capability,
        'no capability setting (NULL, or empty once set in a transaction)',
      )
      t.equal(rows[0].subject, null, 'keyhole.subject() reads no capability')
      t.equal(rows[0].idle, true, 'no transaction left open')
    })

    t.test('the handle refuses once the work settled', async (t) => {
      let kept: Parameters<Parameters<typeof keyhole.run>[1]>[0] | undefined
      await keyhole.run(alice, async (db) => {
        kept = db
        await db.select(table)
      })
      await t.rejects(kept!.select(table), /ended/)
    })

    t.test('a moderator may delete, an admin sees everything', async (t) => {
      const bob = keyhole.capability({ subject: 'bob', groups: { moderator: [k.groupB] } })
      await k.db.pool.query(
        `INSERT INTO ${table} (group_id, owner, body) VALUES ($1, 'bob', 'to delete')`,
        [k.groupB],
      )
      const deleted = await keyhole.run(bob, (db) => db.delete(table, { body: 'to delete' }))
      t.equal(deleted.count, 1)
      const root = keyhole.capability({ subject: 'root', admin: true })
      const all = await keyhole.run(root, (db) => db.select(table, {}, { columns: ['body'] }))
      t.same(all, [{ body: 'a' }, { body: 'b' }])
    })

    t.test('a capability from claims, validated as a token’s', async (t) => {
      const fromClaims = keyhole.capabilityFromClaims({
        sub: 'alice',
        permissions: [
          { group: k.groupA, role: 'member' },
          { group: k.groupB, role: 'Admin' },
        ],
        exp: 1,
      })
      t.equal(fromClaims.isAdmin, false, 'unknown roles grant nothing')
      t.equal(fromClaims.expiresAt, undefined, 'times are not read')
      t.same(await keyhole.run(fromClaims, (db) => db.select(table, {}, { columns: ['body'] })), [
        { body: 'a' },
      ])
    })
  })
}

t.test('capabilityFromClaims refuses what a token would be refused for', async (t) => {
  const keyhole = createKeyhole({ pool: k.db.pool, policies: notesPolicies, mode: 'guard' })
  const bad: [string, Record<string, unknown>, string][] = [
    ['no subject', { permissions: [] }, 'KH_TOKEN_CLAIM'],
    ['not an object', null as unknown as Record<string, unknown>, 'KH_TOKEN_CLAIM'],
    ['a string', 'alice' as unknown as Record<string, unknown>, 'KH_TOKEN_CLAIM'],
    ['an inherited subject', Object.create({ sub: 'alice' }), 'KH_TOKEN_CLAIM'],
    ['permissions not a list', { sub: 'a', permissions: {} }, 'KH_TOKEN_PERMISSIONS'],
    [
      'a group of another type',
      { sub: 'a', permissions: [{ group: '1);--', role: 'member' }] },
      'KH_TOKEN_PERMISSIONS',
    ],
  ]
  for (const [name, claims, code] of bad) {
    t.throws(() => keyhole.capabilityFromClaims(claims), { code, statusCode: 401 }, name)
  }
  const custom = createKeyhole({
    pool: k.db.pool,
    policies: notesPolicies,
    mode: 'guard',
    capability: { subjectClaim: 'id', claim: 'grants', groupIdType: 'bigint' },
  })
  const holder = custom.capabilityFromClaims({ id: 7, grants: [{ group: 42, role: 'moderator' }] })
  t.equal(holder.subject, '7')
  t.same(holder.groups('member'), ['42'])
  t.same(custom.capability({ subject: 'w', groups: { member: ['42'] } }).groups('member'), ['42'])
})

t.test('the options are validated once, naming the option', async (t) => {
  const pool = k.db.pool
  const bad: [string, unknown, RegExp][] = [
    ['not an object', null, /Invalid option options:/],
    ['no pool', { policies: notesPolicies, mode: 'guard' }, /Invalid option pool:/],
    [
      'a pool without connect',
      { pool: { query() {} }, policies: notesPolicies, mode: 'guard' },
      /option pool: must be a node-postgres/,
    ],
    [
      'policies not from definePolicies',
      { pool, policies: { tables: {} }, mode: 'guard' },
      /option policies: must come from definePolicies/,
    ],
    [
      'neither key nor mode',
      { pool, policies: notesPolicies },
      /Invalid option mode: required without signingKey/,
    ],
    [
      "a pg.native pool in 'rls' mode",
      { pool: nativePool(), policies: notesPolicies, signingKey: k.signingKey },
      /^Invalid option pool: 'rls' mode pipelines .*\(pg\.native, or another driver\)/,
    ],
    [
      "'rls' without a key",
      { pool, policies: notesPolicies, mode: 'rls' },
      /Invalid option signingKey: required when mode is 'rls'/,
    ],
    [
      "a key in 'guard' mode",
      { pool, policies: notesPolicies, mode: 'guard', signingKey: k.signingKey },
      /Invalid option signingKey: not used in 'guard' mode/,
    ],
    [
      'an unknown option',
      { pool, policies: notesPolicies, mode: 'guard', database: {} },
      /Invalid option database:/,
    ],
    [
      'bad capability options',
      { pool, policies: notesPolicies, mode: 'guard', capability: { roles: [] } },
      /capability\.roles/,
    ],
    [
      'a short signing key',
      { pool, policies: notesPolicies, signingKey: 'short' },
      /Invalid option signingKey: expected at least 32/,
    ],
  ]
  for (const [name, options, message] of bad) {
    t.throws(
      () => createKeyhole(options as CreateKeyholeOptions),
      { code: 'KH_INVALID_OPTIONS', message },
      name,
    )
  }
  // 'guard' mode calls only the pool's query and connect; a subclass of pg's Client is pg's.
  createKeyhole({ pool: nativePool() as typeof pool, policies: notesPolicies, mode: 'guard' })
  const subclass = new pg.Pool({ Client: class extends pg.Client {} })
  createKeyhole({ pool: subclass, policies: notesPolicies, signingKey: k.signingKey })
  const options = { pool, policies: notesPolicies, mode: 'guard' as const }
  const copy = { ...options }
  createKeyhole(options)
  t.same(options, copy, "the caller's object is not mutated")
})

t.test('a policy naming a role outside the hierarchy fails before any connection', async (t) => {
  let connected = 0
  const pool = {
    query: k.db.pool.query.bind(k.db.pool),
    connect() {
      connected++
      return k.db.pool.connect()
    },
  }
  const keyhole = createKeyhole({
    pool: pool as unknown as CreateKeyholeOptions['pool'],
    policies: notesPolicies,
    mode: 'guard',
    capability: { roles: ['reader', 'admin'] },
  })
  const reader = keyhole.capability({ subject: 'r', groups: { reader: [k.groupA] } })
  await t.rejects(
    keyhole.run(reader, (db) => db.select('notes')),
    {
      code: 'KH_INVALID_OPTIONS',
      message: /role "member"/,
    },
  )
  t.equal(connected, 0)
})

t.test('no connection: 503 KH_UNAVAILABLE, in both modes', async (t) => {
  const down = {
    query: () => Promise.reject(new Error('down')),
    connect: () => Promise.reject(new Error('connect ECONNREFUSED')),
  } as unknown as CreateKeyholeOptions['pool']
  const worker = { subject: 'w', groups: { member: [k.groupA] } }
  for (const options of [
    { pool: down, policies: notesPolicies, signingKey: k.signingKey },
    { pool: down, policies: notesPolicies, mode: 'guard' as const },
  ]) {
    const keyhole = createKeyhole(options)
    await t.rejects(
      keyhole.run(keyhole.capability(worker), (db) => db.select('notes')),
      { code: 'KH_UNAVAILABLE', statusCode: 503 },
      keyhole.mode,
    )
  }
})

t.test("'guard' mode: a connection whose ROLLBACK fails is destroyed, never reused", async (t) => {
  const name = `${k.db.prefix}_victim`
  const pool = new pg.Pool({ connectionString: k.runtimeUrl, max: 1, application_name: name })
  t.teardown(() => pool.end())
  // The terminated connection reports its end as an 'error' event: heard, not fatal.
  pool.on('connect', (client) => client.on('error', () => {}))
  const keyhole = createKeyhole({ pool, policies: plainPolicies, mode: 'guard' })
  const alice = keyhole.capability({ subject: 'alice', groups: { member: [k.groupA] } })
  const pids: number[] = []
  const failure = new Error('the job failed')
  await t.rejects(
    keyhole.run(alice, async (db) => {
      await db.select('plain.notes')
      const { rows } = await k.db.pool.query<{ pid: number }>(
        `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
        [name],
      )
      pids.push(...rows.map((r) => r.pid))
      throw failure
    }),
    failure,
  )
  t.equal(pids.length, 1)
  const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  t.notOk(pids.includes(rows[0]!.pid), 'a new connection serves the next work')
})

t.test('work that throws a non-Error: rolled back, rethrown as thrown', async (t) => {
  for (const options of [
    { policies: notesPolicies, signingKey: k.signingKey },
    { policies: plainPolicies, mode: 'guard' as const },
  ]) {
    const keyhole = createKeyhole({ pool: k.runtimePool(1), ...options })
    const table = keyhole.mode === 'rls' ? 'notes' : 'plain.notes'
    const alice = keyhole.capability({ subject: 'alice', groups: { member: [k.groupA] } })
    const thrown = await keyhole
      .run(alice, async (db) => {
        await db.insert(table, { group_id: k.groupA, owner: 'alice', body: 'thrown' })
        throw 'a string'
      })
      .then(
        () => 'resolved',
        (error: unknown) => error,
      )
    t.equal(thrown, 'a string', keyhole.mode)
    t.same(await bodies(table), ['a', 'b'])
  }
})
