/**
 * keyhole/testing's fixtures where the guards say little: foreign keys the guards do not set (to a
 * table no policy names, to a policy table whose rows have owners), a group's own row made first
 * as the parent another row needs, tables with nothing to move or update, an insert into a group's
 * own row (not applicable), a delete the foreign keys refuse (ERROR in both layers); and what it
 * cannot generate, each refused with the column or table to give.
 */
import t from 'tap'
import { adminOnly, and, definePolicies, inGroup, isSubject, or, quoteTable } from 'keyhole'
import { createPolicyTest, expectAccess, PolicyMismatch, type AdminClient } from 'keyhole/testing'
import { FixtureGenerator } from '../../src/testing/fixtures.ts'
import { scratchName, serverUrl } from '../helpers/database.ts'

const member = inGroup('org_id', 'member')
const policies = definePolicies({
  // Before orgs: its rows need an org, created first; the orgs fixture is then that row.
  projects: {
    read: member,
    insert: member,
    update: and(isSubject('owner'), member),
    delete: adminOnly(),
  },
  orgs: { read: inGroup('id', 'member'), insert: inGroup('id', 'admin'), delete: adminOnly() },
  milestones: { read: or(isSubject('author'), adminOnly()) },
  notes: { read: adminOnly() },
  tags: { read: adminOnly(), insert: adminOnly(), update: adminOnly(), delete: adminOnly() },
  // Column rules: members may write no column the update probe sets, moderators the label.
  badges: {
    read: member,
    update: member,
    columns: {
      read: { member: ['id', 'org_id', 'label'] },
      write: { member: ['id'], moderator: ['label'] },
      hidden: ['secret'],
    },
  },
})

const migrations = async (client: AdminClient) => {
  await client.query(`
    CREATE TABLE orgs (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE units (id int PRIMARY KEY, code text NOT NULL, ref uuid NOT NULL, extra json NOT NULL);
    CREATE TABLE projects (id serial PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs,
      owner text NOT NULL, unit_id int NOT NULL REFERENCES units, label text NOT NULL);
    CREATE TABLE milestones (id serial PRIMARY KEY, author text NOT NULL,
      project_id int NOT NULL REFERENCES projects ON DELETE CASCADE);
    CREATE TABLE notes (id serial PRIMARY KEY,
      project_id int NOT NULL REFERENCES projects ON DELETE CASCADE, body text NOT NULL);
    CREATE TABLE tags (name text PRIMARY KEY);
    CREATE TABLE badges (id serial PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs,
      label text NOT NULL, secret text);
  `)
}

const started = Date.now()
const test = await createPolicyTest({
  policies,
  databaseUrl: serverUrl(),
  database: scratchName(),
  migrations,
  capability: { groupIdType: 'bigint' },
  callers: { auditor: { subject: 'auditor-1', permissions: [{ group: '1003', role: 'member' }] } },
  rows: { units: { code: 'U1' } },
})
t.teardown(() => test.close())
t.comment(`scratch database ready in ${Date.now() - started} ms`)

t.test('rows for foreign keys the guards do not set', async (t) => {
  const projects = test.fixtures.find((f) => f.name === 'projects')!
  const units = await test.query<{ id: number; code: string; ref: string }>('SELECT * FROM units')
  t.equal(units.rows.length, 1, 'one row of the table no policy names, shared')
  t.equal(units.rows[0]!.code, 'U1', 'rows overrides a table no policy names')
  t.match(units.rows[0]!.ref, /^[0-9a-f-]{36}$/)
  t.ok(projects.rows.A.every((r) => r.row.unit_id === units.rows[0]!.id))
  const milestones = test.fixtures.find((f) => f.name === 'milestones')!.rows.B
  const notes = test.fixtures.find((f) => f.name === 'notes')!.rows.B
  const projectOf = async (id: unknown) =>
    (
      await test.query<{ owner: string; org_id: string }>(
        'SELECT owner, org_id FROM projects WHERE id = $1',
        [id],
      )
    ).rows[0]
  t.same(
    await Promise.all([...milestones, ...notes].map((r) => projectOf(r.row.project_id))),
    [
      { owner: 'me', org_id: '1002' },
      { owner: 'someone-else', org_id: '1002' },
      { owner: 'me', org_id: '1002' },
    ],
    "a policy table's row of the same group (and owner, when the row has one; else the caller's)",
  )
  const orgs = test.fixtures.find((f) => f.name === 'orgs')!
  t.same(
    orgs.rows.A.map((r) => r.row.id),
    ['1001'],
    "the group's own row, made first for a project",
  )
  t.equal(orgs.inserts, undefined, 'no insert probe: the group column is a unique key')
})

t.test('reads of own rows, nothing to move or update, your own callers', async (t) => {
  const expected = expectAccess(policies).table('projects')
  for (const g of ['A', 'B'] as const) {
    for (const role of ['member', 'moderator']) {
      expected
        .as(`${role} of ${g}`)
        .can(`read ${g}`, `insert ${g}`)
        .partly(`update ${g}`)
        .cannot('delete', 'move')
    }
  }
  expected.as('admin').can('read', 'insert', 'delete').partly('update', 'move')
  expected.table('milestones')
  for (const caller of test.callers.filter((c) => !['nobody', 'auditor', 'admin'].includes(c))) {
    expected.as(caller).partly('read')
  }
  expected.as('admin').can('read')
  expected.table('notes').as('admin').can('read')
  expected.table('tags').as('admin').can('any')
  const result = await test.check(expected, {
    tables: ['projects', 'milestones', 'notes', 'tags'],
  })
  const tags = result.cells.filter((c) => c.table === 'tags' && c.caller === 'admin')
  t.same(
    tags.filter((c) => c.guard.outcome === 'n/a').map((c) => c.operation),
    ['update A', 'update B', 'move A to B', 'move B to A'],
    'a table of one key column: nothing to update, no group to move to',
  )
})

t.test('a runtime connection the server ends while idle is replaced, not thrown', async (t) => {
  // The check above left the scratch pool's client idle. A backend the server ends (DROP DATABASE
  // WITH (FORCE) on close, an administrator, a restart) errors that idle client: a pool without an
  // error listener throws it as an uncaught exception, failing whatever test runs at that moment.
  const ended = await test.query<{ ended: boolean }>(
    'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE usename = $1',
    [test.runtimeRole],
  )
  t.ok(ended.rows.length > 0 && ended.rows.every((r) => r.ended), 'an idle runtime backend ended')
  await new Promise((resolve) => setTimeout(resolve, 200))
  const result = await test.check(expectAccess(policies).table('tags').as('admin').can('any'), {
    tables: ['tags'],
  })
  t.ok(result.ok, 'the next check runs on a new connection')
})

t.test('a delete the foreign keys refuse is an ERROR in both layers', async (t) => {
  const expected = expectAccess(policies)
    .table('orgs')
    .as('member of A')
    .can('read A')
    .as('moderator of A')
    .can('read A')
    .as('member of B')
    .can('read B')
    .as('moderator of B')
    .can('read B')
    .as('admin')
    .can('read', 'delete')
  const error = (await test
    .check(expected, { tables: ['orgs'] })
    .catch((e: unknown) => e)) as PolicyMismatch
  t.type(error, PolicyMismatch)
  t.same(
    error.report.failures.map((c) => [c.operation, c.guard.outcome, c.rls.outcome, c.disagree]),
    [
      ['delete A', 'error', 'error', false],
      ['delete B', 'error', 'error', false],
    ],
  )
  t.match(error.message, /admin +yes +yes +- +- +no +no +- +- +yes +yes\n {2}guard .* ERROR ✗/)
  t.match(
    error.message,
    /rls: {3}DELETE FROM orgs WHERE "id" = \$1\n {6}→ failed: 23503: update or delete/,
  )
})

t.test('the statement shown for each kind of failing cell', async (t) => {
  const error = (await test
    .check({ tags: { admin: { partly: ['read A'], cannot: ['insert'] } } }, { tables: ['tags'] })
    .catch((e: unknown) => e)) as PolicyMismatch
  t.same(
    error.report.failures.map((c) => [c.operation, c.expected, c.guard.outcome]),
    [
      ['read A', 'some', 'all'],
      ['insert A', 'none', 'all'],
      ['insert B', 'none', 'all'],
      ['delete A', 'none', 'all'],
      ['delete B', 'none', 'all'],
      ['read B', 'none', 'all'],
    ].sort(
      (a, b) =>
        ['read A', 'read B', 'insert A', 'insert B', 'delete A', 'delete B'].indexOf(a[0]!) -
        ['read A', 'read B', 'insert A', 'insert B', 'delete A', 'delete B'].indexOf(b[0]!),
    ),
  )
  t.match(error.message, /✗ tags · admin · read A: expected part; guard yes \(1 of 1\)/)
  t.match(error.message, /rls: {3}INSERT INTO tags \("name"\) VALUES \(\$1\)\n {6}→ let through/)
})

t.test(
  'column rules: a write they refuse is a denial of the cell, judged by the guard',
  async (t) => {
    const expected = expectAccess(policies).table('badges')
    for (const g of ['A', 'B'] as const) {
      expected
        .as(`member of ${g}`)
        .can(`read ${g}`)
        .as(`moderator of ${g}`)
        .can(`read ${g}`, `update ${g}`)
    }
    expected.as('admin').can('read', 'update')
    const result = await test.check(expected, { tables: ['badges'] })
    const cell = (caller: string, operation: string) =>
      result.cells.find((c) => c.caller === caller && c.operation === operation)!
    const refused = cell('member of A', 'update A')
    t.match(refused.guard.statements, [
      { allowed: false, error: undefined, refused: /^KH_COLUMN_DENIED: / },
    ])
    t.same(
      [refused.guard.outcome, refused.rls.outcome, refused.disagree],
      ['none', 'all', false],
      'the database holds no per-role column rule: not a disagreement',
    )
    t.match(
      cell('moderator of A', 'update A').guard.statements[0]!.sql,
      /SET "label" = /,
      'the update probe sets the column columns.write names, never the hidden one nor the key',
    )
    t.same(
      [cell('admin', 'move A to B').guard.outcome, cell('admin', 'move A to B').rls.outcome],
      ['none', 'all'],
      "no role may write the group column: the admin's move is refused",
    )
    const error = (await test
      .check(expected.as('member of A').can('update A'), { tables: ['badges'] })
      .catch((e: unknown) => e)) as PolicyMismatch
    t.match(
      error.message,
      /✗ badges · member of A · update A: expected yes; guard no \(0 of 1\), rls yes \(1 of 1\)\n {4}guard: .*\n {6}→ denied by the column rules \(KH_COLUMN_DENIED: /,
    )
  },
)

const noRows = {
  groupIds: test.groups,
  subjects: { caller: 'me', other: 'x', anonymous: 'y' },
  rows: {},
}
const admin: AdminClient = { query: (text, values) => test.query(text, values) }
const generate = (p: ReturnType<typeof definePolicies>) =>
  new FixtureGenerator(admin, noRows).generate(p, (name) => quoteTable(name).sql)

t.test('what cannot be generated is refused, naming what to give', async (t) => {
  await test.query(`
    CREATE TABLE shapes (id serial PRIMARY KEY, team bigint NOT NULL, at point NOT NULL);
    CREATE TABLE loose (team bigint NOT NULL);
    CREATE TABLE chick (id serial PRIMARY KEY, egg_id int NOT NULL);
    CREATE TABLE egg (id serial PRIMARY KEY, chick_id int NOT NULL REFERENCES chick);
    ALTER TABLE chick ADD FOREIGN KEY (egg_id) REFERENCES egg;
    CREATE TABLE mail (id serial PRIMARY KEY, team bigint NOT NULL, address text NOT NULL CHECK (address LIKE '%@%'));
  `)
  const team = inGroup('team', 'member')
  const cases: [string, ReturnType<typeof definePolicies>, RegExp][] = [
    [
      'a type it does not know',
      definePolicies({ shapes: { read: team } }),
      /cannot generate a value for "?shapes"?\.at \(point\): give it in rows/,
    ],
    ['no primary key', definePolicies({ loose: { read: team } }), /needs a primary key on loose/],
    [
      'a circle of NOT NULL foreign keys',
      definePolicies({ chick: { read: adminOnly() } }),
      /refer to each other in a circle/,
    ],
    [
      'a CHECK the generated value fails',
      definePolicies({ mail: { read: team } }),
      /could not insert a fixture row into mail \(new row for relation "mail" violates check constraint/,
    ],
  ]
  for (const [name, p, message] of cases) {
    await t.rejects(generate(p), { code: 'KH_INVALID_OPTIONS', message }, name)
  }
})

t.test('options refused before anything is created', async (t) => {
  const cases: [string, Parameters<typeof createPolicyTest>[0]][] = [
    [
      'a caller named like a generated one',
      { policies, databaseUrl: serverUrl(), callers: { admin: {} } },
    ],
    ['a caller named nobody', { policies, databaseUrl: serverUrl(), callers: { nobody: {} } }],
    [
      'a database name that is not an identifier',
      { policies, databaseUrl: serverUrl(), database: 'a-b' },
    ],
  ]
  for (const [name, options] of cases) {
    await t.rejects(createPolicyTest(options), { code: 'KH_INVALID_OPTIONS' }, name)
  }
  const twoWays = expectAccess(policies).table('tags').as('admin').cannot('move').can('move')
  await t.rejects(test.check(twoWays), {
    code: 'KH_INVALID_OPTIONS',
    message: /expected both all and none/,
  })
})

t.test('a failure while creating drops the scratch database and its roles', async (t) => {
  // Names of this test's own: other files create keyhole_test_<random> databases and roles at
  // the same time, so counting that prefix raced with them. Cleanup does not depend on the name.
  const names = [scratchName(), scratchName()]
  await t.rejects(
    createPolicyTest({
      policies,
      databaseUrl: serverUrl(),
      database: names[1],
      migrations: async () => {
        throw new Error('a migration failed')
      },
    }),
    { message: 'a migration failed' },
  )
  await t.rejects(
    createPolicyTest({
      policies: definePolicies({ loose: { read: inGroup('team', 'member') } }),
      databaseUrl: serverUrl(),
      database: names[0],
      migrations: (client) =>
        client.query('CREATE TABLE loose (team uuid NOT NULL)').then(() => {}),
    }),
    { code: 'KH_INVALID_OPTIONS', message: /needs a primary key on loose/ },
  )
  const left = await test.query(
    `SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE ANY ($1))::int AS databases,
            (SELECT count(*) FROM pg_roles WHERE rolname LIKE ANY ($1))::int AS roles`,
    [names.map((n) => `${n}%`)],
  )
  t.same(left.rows, [{ databases: 0, roles: 0 }])
})
