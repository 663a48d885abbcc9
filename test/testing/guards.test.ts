/**
 * keyhole/testing on a small schema with one table per kind of guard: inGroup, isSubject with
 * and/or, viaParent, viaParent nested two levels, adminOnly. Fixtures are generated from the
 * guards and the catalogue (a foreign key to a table no policy names, columns of many types); the
 * migrations are a function. Then the failures it must report: a policy edited in the database
 * to allow more is a disagreement of the layers, whatever the expectation says.
 */
import t from 'tap'
import { adminOnly, and, definePolicies, inGroup, isSubject, or, viaParent } from 'keyhole'
import { createPolicyTest, expectAccess, PolicyMismatch, type AdminClient } from 'keyhole/testing'
import { scratchName, serverUrl } from '../helpers/database.ts'

const member = inGroup('team_id', 'member')
const moderator = inGroup('team_id', 'moderator')
const doc = { table: 'docs', key: 'id', column: 'doc_id', groupColumn: 'team_id' }
const section = { table: 'sections', key: 'id', column: 'section_id', groupColumn: doc }

const policies = definePolicies({
  docs: {
    read: member,
    insert: member,
    update: and(isSubject('owner'), member),
    delete: moderator,
  },
  notes: {
    read: or(isSubject('author'), moderator),
    insert: member,
    delete: or(isSubject('author'), moderator),
    encrypted: ['body'], // the probes bind a throwaway data key
  },
  sections: {
    read: viaParent(doc, 'member'),
    insert: viaParent(doc, 'member'),
    delete: viaParent(doc, 'moderator'),
  },
  paragraphs: {
    read: viaParent(section, 'member'),
    insert: viaParent(section, 'member'),
    update: viaParent(section, 'member'),
  },
  settings: {
    read: adminOnly(),
    insert: adminOnly(),
    update: adminOnly(),
    delete: adminOnly(),
    system: ['read', 'delete'], // a system context's list names no column: nothing to generate
  },
})

async function migrations(client: AdminClient) {
  await client.query(`
    CREATE TABLE teams (id uuid PRIMARY KEY, name text NOT NULL);
    CREATE TABLE docs (id serial PRIMARY KEY, team_id uuid NOT NULL REFERENCES teams,
      owner text NOT NULL, title text NOT NULL CHECK (title <> ''), created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE notes (id serial PRIMARY KEY, team_id uuid NOT NULL REFERENCES teams,
      author text NOT NULL, body text);
    CREATE TABLE sections (id bigserial PRIMARY KEY,
      doc_id int NOT NULL REFERENCES docs ON DELETE CASCADE, heading varchar(50) NOT NULL, position int2 NOT NULL);
    CREATE TYPE paragraph_kind AS ENUM ('prose', 'code');
    CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 20);
    CREATE TABLE paragraphs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      section_id bigint NOT NULL REFERENCES sections ON DELETE CASCADE,
      body short_text NOT NULL, meta jsonb NOT NULL, kind paragraph_kind NOT NULL, draft boolean NOT NULL,
      written date NOT NULL, seen timestamp NOT NULL, tags text[] NOT NULL, blob bytea NOT NULL,
      weight numeric NOT NULL, words bigint NOT NULL, score float8 NOT NULL,
      length int GENERATED ALWAYS AS (words * 2) STORED);
    CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);
  `)
}

const started = Date.now()
const test = await createPolicyTest({
  policies,
  databaseUrl: serverUrl(),
  database: scratchName(),
  migrations,
  callers: {
    'member of both': {
      permissions: [
        { group: 'A', role: 'member' },
        { group: 'B', role: 'member' },
      ],
    },
  },
  rows: { docs: ({ probe }) => ({ title: probe ? 'inserted by a probe' : 'a fixture' }) },
  seed: async (client, groups) => {
    await client.query(`INSERT INTO teams (id, name) VALUES ($1, 'team A')`, [groups.A])
  },
})
t.teardown(() => test.close())
t.comment(`scratch database ready in ${Date.now() - started} ms`)

t.test('the callers: nobody, each role of A and B, admin, then your own', async (t) => {
  t.same(test.callers, [
    'nobody',
    'member of A',
    'moderator of A',
    'member of B',
    'moderator of B',
    'admin',
    'member of both',
  ])
})

t.test('fixtures: generated from the guards and the catalogue, overridden by rows', async (t) => {
  const docs = test.fixtures.find((f) => f.name === 'docs')!
  t.same(
    docs.rows.A.map((r) => [r.owner, r.row.team_id, r.row.owner, r.row.title]),
    [
      ['caller', test.groups.A, 'me', 'a fixture'],
      ['other', test.groups.A, 'someone-else', 'a fixture'],
    ],
    'isSubject: a row of the caller and one of someone else in each group',
  )
  t.same(
    docs.inserts!.B.map((r) => [r.team_id, r.title]),
    [
      [test.groups.B, 'inserted by a probe'],
      [test.groups.B, 'inserted by a probe'],
    ],
  )
  const teams = (await test.query<{ name: string }>('SELECT name FROM teams ORDER BY name')).rows
  t.same(teams.length, 2, 'the seeded team A, and team B the foreign key needed')
  t.equal(teams[0]!.name, 'team A')
  const paragraph = test.fixtures.find((f) => f.name === 'paragraphs')!.rows.B[0]!.row
  const chain = await test.query<{ team_id: string }>(
    `SELECT d.team_id FROM paragraphs p JOIN sections s ON s.id = p.section_id
     JOIN docs d ON d.id = s.doc_id WHERE p.id = $1`,
    [paragraph.id],
  )
  t.same(
    chain.rows,
    [{ team_id: test.groups.B }],
    'nested viaParent: paragraph → section → doc → B',
  )
  t.same([paragraph.kind, paragraph.draft, paragraph.tags], ['prose', false, []])
  t.same(
    test.fixtures.find((f) => f.name === 'settings')!.placement,
    [],
    'adminOnly places nothing',
  )
})

/** inGroup with isSubject and and(): the author may edit while a member. */
function docsExpected() {
  const expected = expectAccess(policies).table('docs')
  for (const g of ['A', 'B'] as const) {
    expected.as(`member of ${g}`).can(`read ${g}`, `insert ${g}`).partly(`update ${g}`)
    expected
      .as(`moderator of ${g}`)
      .can(`read ${g}`, `insert ${g}`, `delete ${g}`)
      .partly(`update ${g}`)
  }
  // Admins get no exception from isSubject: only their own rows.
  expected.as('admin').can('read', 'insert', 'delete').partly('update', 'move')
  expected.as('member of both').can('read', 'insert').partly('update', 'move')
  return expected
}

t.test('inGroup with isSubject and and(): the author may edit while a member', async (t) => {
  t.ok((await test.check(docsExpected(), { tables: ['docs'] })).ok)
})

t.test('or(isSubject, inGroup): own rows anywhere, every row where moderator', async (t) => {
  const expected = expectAccess(policies).table('notes')
  for (const g of ['A', 'B'] as const) {
    const other = g === 'A' ? 'B' : 'A'
    expected.as(`member of ${g}`).can(`insert ${g}`).partly('read', 'delete')
    expected
      .as(`moderator of ${g}`)
      .can(`read ${g}`, `insert ${g}`, `delete ${g}`)
      .partly(`read ${other}`, `delete ${other}`)
  }
  expected.as('admin').can('read', 'insert', 'delete')
  expected.as('member of both').can('insert').partly('read', 'delete')
  t.ok((await test.check(expected, { tables: ['notes'] })).ok)
})

t.test('viaParent: a section is in its document’s group', async (t) => {
  const expected = {
    sections: {
      'member of A': { can: ['read A', 'insert A'] },
      'moderator of A': { can: ['read A', 'insert A', 'delete A'] },
      'member of B': { can: ['read B', 'insert B'] },
      'moderator of B': { can: ['read B', 'insert B', 'delete B'] },
      admin: { can: ['read', 'insert', 'delete'] },
      'member of both': { can: ['read', 'insert'], cannot: ['delete', 'move'] },
    },
  } as const
  t.ok((await test.check(expected, { tables: ['sections'] })).ok)
})

t.test('viaParent nested: paragraph → section → document → group', async (t) => {
  const expected = expectAccess(policies).table('paragraphs')
  for (const g of ['A', 'B'] as const) {
    for (const role of ['member', 'moderator']) {
      expected.as(`${role} of ${g}`).can(`read ${g}`, `insert ${g}`, `update ${g}`)
    }
  }
  expected.as('admin').can('read', 'insert', 'update', 'move')
  expected.as('member of both').can('read', 'insert', 'update', 'move')
  t.ok((await test.check(expected, { tables: ['paragraphs'] })).ok)
})

t.test('adminOnly: the admin, nobody else; no group to move to', async (t) => {
  const result = await test.check(expectAccess(policies).table('settings').as('admin').can('any'), {
    tables: ['settings'],
  })
  const moves = result.cells.filter((c) => c.operation.startsWith('move'))
  t.ok(moves.every((c) => c.guard.outcome === 'n/a' && c.rls.outcome === 'n/a'))
})

t.test('expectations that name what does not exist are refused', async (t) => {
  const cases: [string, () => unknown][] = [
    ['an unknown table', () => expectAccess(policies).table('doc')],
    ['as() before table()', () => expectAccess(policies).as('admin')],
    ['can() before as()', () => expectAccess(policies).table('docs').can('read')],
    [
      'an unknown operation',
      () =>
        expectAccess(policies)
          .table('docs')
          .as('admin')
          .can('write' as 'read'),
    ],
    [
      'an operation of no group',
      () =>
        expectAccess(policies)
          .table('docs')
          .as('admin')
          .can('read C' as 'read'),
    ],
  ]
  for (const [name, build] of cases) {
    t.throws(build, { code: 'KH_INVALID_OPTIONS' }, name)
  }
  const checks: [string, Parameters<typeof test.check>[0], Parameters<typeof test.check>[1]][] = [
    ['an unknown table', { doc: {} }, undefined],
    ['an unknown caller', { docs: { moderator: { can: ['read'] } } }, undefined],
    [
      'a cell labelled two ways',
      { docs: { admin: { can: ['read'], cannot: ['read A'] } } },
      undefined,
    ],
    [
      'an operation that is not one',
      { docs: { admin: { can: [7 as unknown as 'read'] } } },
      undefined,
    ],
    ['an unknown table to check', {}, { tables: ['doc'] }],
  ]
  for (const [name, expectations, options] of checks) {
    await t.rejects(test.check(expectations, options), { code: 'KH_INVALID_OPTIONS' }, name)
  }
})

t.test('an RLS policy edited to allow more is a disagreement of the layers', async (t) => {
  await test.query(
    `DROP POLICY keyhole_delete ON docs;
     CREATE POLICY keyhole_delete ON docs FOR DELETE TO ${test.runtimeRole} USING (true)`,
  )
  const error = (await test
    .check(docsExpected(), { tables: ['docs'] })
    .catch((e: unknown) => e)) as PolicyMismatch
  t.type(error, PolicyMismatch)
  const failures = error.report.failures
  t.ok(
    failures.every(
      (c) => c.operation.startsWith('delete') && c.disagree && c.rls.outcome === 'all',
    ),
    'only deletes fail: each one the database allowed and the guard did not',
  )
  // DELETE reads the row, so the SELECT policy still applies: the edited policy lets each
  // caller delete what it can read.
  t.same(
    failures.map((c) => [c.caller, c.operation, c.guard.outcome, c.rls.outcome]),
    [
      ['member of A', 'delete A', 'none', 'all'],
      ['member of B', 'delete B', 'none', 'all'],
      ['member of both', 'delete A', 'none', 'all'],
      ['member of both', 'delete B', 'none', 'all'],
    ],
    'the layers disagree though the expectation holds for the guard',
  )
  t.match(error.message, /≠ docs · member of A · delete A: the layers disagree \(expected no\)/)
  t.match(error.message, /rls: {3}DELETE FROM docs WHERE "id" = \$1\n {6}→ let through/)
  t.comment(error.message)
})
