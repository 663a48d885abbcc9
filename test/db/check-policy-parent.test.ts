/**
 * Check 6 and a policy that only looks up the row's parent (`EXISTS (SELECT 1 FROM parent p1
 * WHERE p1.id = t.parent_id)`, what keyhole generates for a `viaParent` guard when the parent's
 * SELECT policy already says the same): it reads the capability through the parent's own policy,
 * so it passes exactly when the parent's row-level security admits only what the capability
 * grants; anything more in the branch, or a parent whose policies do not, is
 * KH_DB_POLICY_ALWAYS_TRUE as before.
 */
import t from 'tap'
import pg from 'pg'
import { checkDatabase } from '../../src/db/check-database.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { createBaseline } from '../helpers/roles.ts'

const db = await createTestDatabase(t)
const base = await createBaseline(db)
const r = `"${base.runtime.name}"`
const m = `"${base.migrator.name}"`
// Outside the application's schemas (check 11 would report it as an unguarded table).
await base.sql(`CREATE SCHEMA side AUTHORIZATION ${m}; SET ROLE ${m};
  CREATE TABLE side.open (id int PRIMARY KEY);
  GRANT USAGE ON SCHEMA side TO ${r};
  GRANT SELECT ON side.open TO ${r};
  RESET ROLE`)

async function codesFor(arrange: string): Promise<string[]> {
  await base.sql(`SET ROLE ${m}; ${arrange}; RESET ROLE`)
  const client = new pg.Client({ connectionString: base.runtimeUrl })
  try {
    await client.connect()
    return [...new Set((await checkDatabase(client, base.options)).map((f) => f.code))].sort()
  } finally {
    await client.end()
  }
}

const lookup = (body: string) =>
  `DROP POLICY keyhole_select ON app.comments;
   CREATE POLICY keyhole_select ON app.comments FOR SELECT TO ${r} USING (${body})`
const restore = `DROP POLICY keyhole_select ON app.comments;
  CREATE POLICY keyhole_select ON app.comments AS PERMISSIVE FOR SELECT TO ${r}
    USING ((group_id = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())))`

t.test('the baseline passes', async (t) => {
  t.same(await codesFor('SELECT 1'), [])
})

const cases: [string, string, string[], string?][] = [
  [
    "a lookup in a parent whose policies read the capability (app.posts')",
    lookup('EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id)'),
    [],
  ],
  [
    'the lookup OR the guard',
    lookup(
      `EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id) OR (SELECT keyhole.is_admin())`,
    ),
    [],
  ],
  [
    'a lookup in a table without row-level security',
    lookup('EXISTS (SELECT 1 FROM side.open AS p1 WHERE p1.id = comments.post_id)'),
    ['KH_DB_POLICY_ALWAYS_TRUE'],
  ],
  [
    'a lookup with another term',
    lookup('EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id OR true)'),
    ['KH_DB_POLICY_ALWAYS_TRUE'],
  ],
  [
    'a lookup with a UNION',
    lookup('EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id UNION SELECT 1)'),
    ['KH_DB_POLICY_ALWAYS_TRUE'],
  ],
  [
    'a lookup that also reads an unprotected table',
    lookup(
      `EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id) OR (SELECT keyhole.is_admin() AND EXISTS (SELECT 1 FROM side.open))`,
    ),
    ['KH_DB_POLICY_ALWAYS_TRUE'],
  ],
  [
    'a lookup in a parent one of whose SELECT policies reads nothing (both reported)',
    `${lookup('EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id)')};
     CREATE POLICY open ON app.posts FOR SELECT TO ${r} USING (true)`,
    ['KH_DB_POLICY_ALWAYS_TRUE'],
    'DROP POLICY open ON app.posts',
  ],
  [
    'two tables that look each other up (a cycle qualifies neither)',
    `${lookup('EXISTS (SELECT 1 FROM app.posts AS p1 WHERE p1.id = comments.post_id)')};
     DROP POLICY keyhole_select ON app.posts;
     CREATE POLICY keyhole_select ON app.posts FOR SELECT TO ${r}
       USING (EXISTS (SELECT 1 FROM app.comments AS p1 WHERE p1.post_id = posts.id))`,
    ['KH_DB_POLICY_ALWAYS_TRUE'],
    `DROP POLICY keyhole_select ON app.posts;
     CREATE POLICY keyhole_select ON app.posts AS PERMISSIVE FOR SELECT TO ${r}
       USING ((group_id = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())))`,
  ],
]

for (const [name, arrange, expected, undo] of cases) {
  t.test(name, async (t) => {
    t.same(await codesFor(arrange), expected)
    await base.sql(`SET ROLE ${m}; ${undo ?? 'SELECT 1'}; ${restore}; RESET ROLE`)
    t.same(await codesFor('SELECT 1'), [], 'restored')
  })
}
