/**
 * Column rules enforced by the request handle and the system handle, in 'guard' mode (the guard
 * in the statement, on a pool that bypasses RLS) and in 'rls' mode (the runtime role under the
 * forced policies, through a session). In the database the runtime role holds no privilege on the
 * hidden column at all (column grants, as the database layer sets them up), so any statement that
 * named it, `SELECT *` included, would fail there (the generated policy SQL's column grants).
 *
 * The table: `teams` (read, insert, update: member; delete: moderator). Members read id, group_id,
 * owner, name and write name, group_id, owner; moderators add invite_code; admins add notes;
 * password_hash is hidden. Capabilities: ann is member of G1 and moderator of G2 (mixed), mo
 * moderator of G1 and G2, mem member of G1, out member of G3, adm admin.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrate } from '../../src/db/migrate.ts'
import { policySql } from '../../src/db/policy-sql.ts'
import { createSessionFactory } from '../../src/db/session.ts'
import { setup } from '../../src/db/setup.ts'
import { op } from '../../src/sql/filter.ts'
import { inGroup } from '../../src/sql/guard.ts'
import { bindPolicies, definePolicies, type PolicyHandle } from '../../src/sql/policies.ts'
import { bindSystem, grantOf } from '../../src/sql/system-handle.ts'
import type { Capability } from '../../src/capability/capability.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { makeCapability } from '../helpers/sql-capability.ts'

const member = inGroup('group_id', 'member')
const policies = definePolicies({
  teams: {
    read: member,
    insert: member,
    update: member,
    delete: inGroup('group_id', 'moderator'),
    system: ['read', 'update'],
    columns: {
      read: {
        member: ['id', 'group_id', 'owner', 'name'],
        moderator: ['invite_code'],
        admin: ['notes'],
      },
      write: {
        member: ['name', 'group_id', 'owner'],
        moderator: ['invite_code'],
        admin: ['notes'],
      },
      hidden: ['password_hash'],
    },
  },
})

const db = await createTestDatabase(t)
const migrator = { name: `${db.prefix}_migrator`, password: randomUUID() }
const runtime = { name: `${db.prefix}_runtime`, password: randomUUID() }
const { signingKey } = await setup(db.url, { migrationRole: migrator, runtimeRole: runtime })
const dir = await mkdtemp(join(tmpdir(), 'keyhole-columns-'))
await writeFile(
  join(dir, '000001.do.teams.sql'),
  `CREATE TABLE public.teams (id serial PRIMARY KEY, group_id uuid NOT NULL, owner text NOT NULL,
     name text NOT NULL, invite_code text, notes text, password_hash text);
   ALTER TABLE public.teams ENABLE ROW LEVEL SECURITY;
   ALTER TABLE public.teams FORCE ROW LEVEL SECURITY;`,
)
await writeFile(
  join(dir, '000002.do.teams-policies.sql'),
  policySql(policies, { runtimeRole: runtime.name }),
)
await migrate(db.urlAs(migrator.name, migrator.password), { migrationsDir: dir })
const runtimePool = new (await import('pg')).default.Pool({
  connectionString: db.urlAs(runtime.name, runtime.password),
  max: 2,
})
t.teardown(() => runtimePool.end())
const sessions = createSessionFactory({ pool: runtimePool, signingKey })

t.test('the runtime role may not read the hidden column: SELECT * fails there', async (t) => {
  const admin = makeCapability({ admin: true })
  await t.rejects(
    sessions.withCapability(admin, (s) => s.query('SELECT * FROM teams')),
    /permission denied/,
  )
})

const [G1, G2, G3] = [randomUUID(), randomUUID(), randomUUID()]
const ann = makeCapability({ subject: 'ann', groups: { member: [G1], moderator: [G2] } })
const mo = makeCapability({ subject: 'mo', groups: { moderator: [G1, G2] } })
const mem = makeCapability({ subject: 'mem', groups: { member: [G1] } })
const out = makeCapability({ subject: 'out', groups: { member: [G3] } })
const adm = makeCapability({ subject: 'adm', admin: true })

type Team = { id: number; group_id: string; name: string; invite_code?: string; notes?: string }
type Mode = 'guard' | 'rls'

/** Resets the three rows: t1 in G1, t2 in G2, t3 in G3; returns their ids. */
async function seed(): Promise<[number, number, number]> {
  await db.pool.query('TRUNCATE teams')
  const { rows } = await db.pool.query<{ id: number }>(
    `INSERT INTO teams (group_id, owner, name, invite_code, notes, password_hash)
     VALUES ($1, 'x', 'one', 'c1', 'n1', 'h1'), ($2, 'x', 'two', 'c2', 'n2', 'h2'),
            ($3, 'x', 'three', 'c3', 'n3', 'h3') RETURNING id`,
    [G1, G2, G3],
  )
  return rows.map((r) => r.id) as [number, number, number]
}

const snapshot = async () =>
  (await db.pool.query(`SELECT * FROM teams ORDER BY id`)).rows as Record<string, unknown>[]

function handle(mode: Mode) {
  return <T>(who: Capability, work: (db: PolicyHandle) => Promise<T>): Promise<T> =>
    mode === 'guard'
      ? work(bindPolicies(policies, db.pool, who))
      : sessions.withCapability(who, (session) =>
          work(bindPolicies(policies, session, who, { mode: 'rls' })),
        )
}

const denied = (column: string) => ({ statusCode: 403, code: 'KH_COLUMN_DENIED', column })

async function suite(t: Test, mode: Mode) {
  const as = handle(mode)
  let [t1, t2, t3] = await seed()
  const byId = (rows: readonly Team[]) => [...rows].sort((a, b) => a.id - b.id)

  t.test('reads return only the readable columns of each row (absent keys)', async (t) => {
    const base = (id: number, group: string, name: string) => ({
      id,
      group_id: group,
      owner: 'x',
      name,
    })
    t.same(byId(await as(mem, (h) => h.select<Team>('teams'))), [base(t1, G1, 'one')], 'member')
    t.same(
      byId(await as(ann, (h) => h.select<Team>('teams'))),
      [base(t1, G1, 'one'), { ...base(t2, G2, 'two'), invite_code: 'c2' }],
      'member of G1, moderator of G2: per row',
    )
    t.same(
      byId(await as(mo, (h) => h.select<Team>('teams'))),
      [
        { ...base(t1, G1, 'one'), invite_code: 'c1' },
        { ...base(t2, G2, 'two'), invite_code: 'c2' },
      ],
      'moderator everywhere',
    )
    t.same(
      byId(await as(adm, (h) => h.select<Team>('teams'))),
      [
        { ...base(t1, G1, 'one'), invite_code: 'c1', notes: 'n1' },
        { ...base(t2, G2, 'two'), invite_code: 'c2', notes: 'n2' },
        { ...base(t3, G3, 'three'), invite_code: 'c3', notes: 'n3' },
      ],
      'admin: the admin rule, never the hidden column',
    )
    t.same(
      byId(await as(ann, (h) => h.select<Team>('teams', {}, { columns: ['id', 'invite_code'] }))),
      [{ id: t1 }, { id: t2, invite_code: 'c2' }],
      'a columns list: its readable columns per row',
    )
  })

  t.test(
    'where, orderBy and after on a column readable in some rows: only those rows',
    async (t) => {
      t.same(await as(ann, (h) => h.select('teams', { invite_code: 'c1' })), [], "G1's code")
      t.same(
        (await as(ann, (h) => h.select<Team>('teams', { invite_code: 'c2' }))).map((r) => r.id),
        [t2],
      )
      t.equal(await as(ann, (h) => h.count('teams', { invite_code: 'c1' })), 0, 'count')
      t.equal(await as(ann, (h) => h.count('teams', { invite_code: 'c2' })), 1)
      t.same(
        (await as(ann, (h) => h.select<Team>('teams', {}, { orderBy: 'invite_code' }))).map(
          (r) => r.id,
        ),
        [t2],
        'orderBy',
      )
      t.same(
        await as(ann, (h) =>
          h.select('teams', {}, { orderBy: 'invite_code', after: { invite_code: 'c0' } }),
        ),
        [{ id: t2, group_id: G2, owner: 'x', name: 'two', invite_code: 'c2' }],
        'after',
      )
      t.same(
        (
          await as(ann, (h) =>
            h.select<Team>('teams', { g: op.or({ invite_code: 'c1' }, { name: 'one' }) }),
          )
        ).map((r) => r.id),
        [],
        'inside op.or: still only the rows where it is readable',
      )
      t.equal(
        await as(mo, (h) => h.count('teams', { invite_code: 'c1' })),
        1,
        'moderator: no restriction',
      )
    },
  )

  t.test(
    'a column readable in no row, or hidden: 403 KH_COLUMN_DENIED before any SQL',
    async (t) => {
      const cases: [string, Capability, (h: PolicyHandle) => Promise<unknown>, string][] = [
        [
          'member: where invite_code',
          mem,
          (h) => h.select('teams', { invite_code: 'c1' }),
          'invite_code',
        ],
        ['member: count', mem, (h) => h.count('teams', { invite_code: 'c1' }), 'invite_code'],
        [
          'member: orderBy',
          mem,
          (h) => h.select('teams', {}, { orderBy: ['invite_code'] }),
          'invite_code',
        ],
        [
          'member: columns',
          mem,
          (h) => h.select('teams', {}, { columns: ['invite_code'] }),
          'invite_code',
        ],
        [
          'member in G3: where on G1 row',
          out,
          (h) => h.select('teams', { invite_code: 'c1' }),
          'invite_code',
        ],
        ['moderator: notes', ann, (h) => h.select('teams', { notes: 'n2' }), 'notes'],
        [
          'moderator: op.not',
          ann,
          (h) => h.select('teams', { x: op.not({ notes: 'n2' }) }),
          'notes',
        ],
        [
          'admin: hidden where',
          adm,
          (h) => h.select('teams', { password_hash: 'h1' }),
          'password_hash',
        ],
        [
          'admin: hidden columns',
          adm,
          (h) => h.select('teams', {}, { columns: ['password_hash'] }),
          'password_hash',
        ],
        [
          'admin: hidden orderBy',
          adm,
          (h) => h.select('teams', {}, { orderBy: 'password_hash' }),
          'password_hash',
        ],
        [
          'member: returning',
          mem,
          (h) => h.update('teams', { id: t1 }, { name: 'x' }, { returning: ['invite_code'] }),
          'invite_code',
        ],
        [
          'member: delete where',
          mem,
          (h) => h.delete('teams', { invite_code: 'c1' }),
          'invite_code',
        ],
        [
          'admin: hidden returning',
          adm,
          (h) => h.delete('teams', { id: t1 }, { returning: ['password_hash'] }),
          'password_hash',
        ],
      ]
      const before = await snapshot()
      for (const [name, who, call, column] of cases) {
        await t.rejects(as(who, call), denied(column), name)
      }
      t.same(await snapshot(), before, 'nothing written')
    },
  )

  t.test(
    'writes: a column the capability may write in no row, or hidden: 403, nothing written',
    async (t) => {
      const before = await snapshot()
      const cases: [string, Capability, (h: PolicyHandle) => Promise<unknown>, string][] = [
        [
          'member: insert invite_code',
          mem,
          (h) => h.insert('teams', { group_id: G1, owner: 'm', name: 'n', invite_code: 'z' }),
          'invite_code',
        ],
        [
          'member: update invite_code',
          mem,
          (h) => h.update('teams', { id: t1 }, { invite_code: 'z' }),
          'invite_code',
        ],
        [
          'member: several rows',
          mem,
          (h) => h.insert('teams', [{ group_id: G1, owner: 'm', name: 'n', invite_code: 'z' }]),
          'invite_code',
        ],
        [
          'member in G3, on G1 row',
          out,
          (h) => h.update('teams', { id: t1 }, { invite_code: 'z' }),
          'invite_code',
        ],
        ['moderator: notes', mo, (h) => h.update('teams', { id: t1 }, { notes: 'z' }), 'notes'],
        [
          'admin: hidden insert',
          adm,
          (h) => h.insert('teams', { group_id: G1, owner: 'a', name: 'n', password_hash: 'z' }),
          'password_hash',
        ],
        [
          'admin: hidden update',
          adm,
          (h) => h.update('teams', { id: t1 }, { password_hash: 'z' }),
          'password_hash',
        ],
      ]
      for (const [name, who, call, column] of cases) {
        await t.rejects(as(who, call), denied(column), name)
      }
      t.same(await snapshot(), before, 'nothing written')
    },
  )

  t.test('writes at a role held in some groups: only rows where it is held', async (t) => {
    const before = await snapshot()
    await t.rejects(
      as(ann, (h) =>
        h.insert('teams', { group_id: G1, owner: 'ann', name: 'n', invite_code: 'z' }),
      ),
      { code: 'KH_CAPABILITY_DENIED', statusCode: 403 },
      'a member of G1 may not set its code: the usual typed denial',
    )
    await t.rejects(
      as(ann, (h) => h.update('teams', { id: t1 }, { invite_code: 'z' })),
      { code: 'KH_CAPABILITY_DENIED', statusCode: 403 },
      'nor change it',
    )
    const moved = await as(ann, (h) =>
      h.update('teams', { id: t2 }, { group_id: G1, invite_code: 'z' }),
    ).catch((e: unknown) => e)
    t.match(moved, { code: 'KH_CAPABILITY_DENIED' }, 'nor move a row with its code to G1')
    t.same(await snapshot(), before, 'nothing written')
    const result = await as(ann, (h) =>
      h.insert('teams', [
        { group_id: G1, owner: 'ann', name: 'a', invite_code: 'z1' },
        { group_id: G2, owner: 'ann', name: 'b', invite_code: 'z2' },
      ]),
    )
    t.same(result.refused, [0], 'several rows: the G1 row refused')
    t.same(
      result.inserted.map((r) => [r.name, r.invite_code]),
      [['b', 'z2']],
    )
    const updated = await as(ann, (h) =>
      h.update<Team>('teams', { group_id: op({ in: [G1, G2] }) }, { invite_code: 'y' }),
    )
    t.equal(updated.count, 2, "G2's two rows")
    t.same(
      (await db.pool.query(`SELECT invite_code FROM teams WHERE group_id = $1`, [G1])).rows,
      [{ invite_code: 'c1' }],
      "G1's code untouched",
    )
    ;[t1, t2, t3] = await seed()
  })

  t.test('returned rows: their readable columns, per row', async (t) => {
    const one = await as(ann, (h) =>
      h.insert<Team>('teams', { group_id: G1, owner: 'ann', name: 'new' }),
    )
    t.notOk('invite_code' in one, 'inserted into G1: no code')
    t.notOk('password_hash' in one)
    const two = await as(ann, (h) =>
      h.insert<Team>('teams', { group_id: G2, owner: 'ann', name: 'new', invite_code: 'q' }),
    )
    t.equal(two.invite_code, 'q', 'inserted into G2: its code')
    const changed = await as(ann, (h) =>
      h.update<Team>('teams', { group_id: op({ in: [G1, G2] }), name: 'new' }, { name: 'newer' }),
    )
    t.same(changed.rows.map((r) => [r.group_id === G2, 'invite_code' in r]).sort(), [
      [false, false],
      [true, true],
    ])
    const gone = await as(mo, (h) => h.delete<Team>('teams', { name: 'newer' }, { returning: '*' }))
    t.equal(gone.count, 2)
    t.ok(gone.rows.every((r) => 'invite_code' in r && !('notes' in r) && !('password_hash' in r)))
    const admin = await as(adm, (h) =>
      h.update<Team>('teams', { id: t3 }, { notes: 'm3' }, { returning: ['notes'] }),
    )
    t.same(admin.rows, [{ notes: 'm3' }], 'admin writes notes')
    ;[t1, t2, t3] = await seed()
  })

  t.test(
    'never reveals that a row exists: an unreadable row answers as a missing one',
    async (t) => {
      // bo moderates G2 only: t1 (G1) is invisible to it.
      const bo = makeCapability({ subject: 'bo', groups: { moderator: [G2] } })
      const hidden = await as(bo, (h) => h.update('teams', { id: t1 }, { invite_code: 'z' })).catch(
        (e: { toJSON(): unknown }) => e.toJSON(),
      )
      const missing = await as(bo, (h) =>
        h.update('teams', { id: -1 }, { invite_code: 'z' }),
      ).catch((e: { toJSON(): unknown }) => e.toJSON())
      t.match(hidden, { statusCode: 404, code: 'KH_NOT_FOUND' })
      t.same(hidden, missing, 'the same body')
      t.same(
        await as(bo, (h) => h.select('teams', { id: t1, invite_code: 'c1' })),
        await as(bo, (h) => h.select('teams', { id: -1, invite_code: 'c1' })),
      )
    },
  )

  t.test('the system handle: every column but the hidden ones', async (t) => {
    const grants = new Set([grantOf('teams', 'read'), grantOf('teams', 'update')])
    const run = <T>(work: (h: PolicyHandle) => Promise<T>): Promise<T> => {
      const bind = (q: Parameters<typeof bindSystem>[0]) =>
        work(
          bindSystem(q, grants, { groupIdType: 'uuid', record: () => {}, tables: policies.tables }),
        )
      return mode === 'guard' ? bind(db.pool) : sessions.withSystem([...grants], bind)
    }
    const rows = await run((h) => h.select<Record<string, unknown>>('teams', {}, { orderBy: 'id' }))
    t.same(Object.keys(rows[0] ?? {}).sort(), [
      'group_id',
      'id',
      'invite_code',
      'name',
      'notes',
      'owner',
    ])
    t.equal(rows.length, 3)
    const updated = await run((h) => h.update('teams', { id: t1 }, { notes: 's' }))
    t.notOk('password_hash' in (updated.rows[0] ?? {}))
    t.equal(await run((h) => h.count('teams', { invite_code: 'c2' })), 1)
    const before = await snapshot()
    const cases: [string, (h: PolicyHandle) => Promise<unknown>, string][] = [
      ['where', (h) => h.select('teams', { password_hash: 'h1' }), 'password_hash'],
      ['count', (h) => h.count('teams', { password_hash: 'h1' }), 'password_hash'],
      [
        'columns',
        (h) => h.select('teams', {}, { columns: ['id', 'password_hash'] }),
        'password_hash',
      ],
      ['orderBy', (h) => h.select('teams', {}, { orderBy: 'password_hash' }), 'password_hash'],
      ['set', (h) => h.update('teams', { id: t1 }, { password_hash: 'z' }), 'password_hash'],
      [
        'returning',
        (h) => h.update('teams', { id: t1 }, { name: 'z' }, { returning: ['password_hash'] }),
        'password_hash',
      ],
    ]
    for (const [name, call, column] of cases) await t.rejects(run(call), denied(column), name)
    t.same(await snapshot(), before, 'nothing written')
    ;[t1, t2, t3] = await seed()
  })
}

t.test("'guard' mode", (t) => suite(t, 'guard'))
t.test("'rls' mode", (t) => suite(t, 'rls'))
