/**
 * The database layer of hidden columns (issue 19, item 2): keyhole's generated policy SQL leaves
 * the runtime role no privilege on a hidden column (`notes.secret`) and every other column as it
 * was; RLS still applies; applying it again, `keyhole migrate` and `keyhole setup` change nothing;
 * a column added later is KH_DB_COLUMN_NOT_GRANTED until the policy SQL runs again; and every way
 * of holding a privilege on the hidden column is KH_DB_COLUMN_PRIVILEGE, whose fix works.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import pg from 'pg'
import { run } from '../../src/cli/main.ts'
import { checkDatabase, type CheckDatabaseOptions } from '../../src/db/check-database.ts'
import { columnPrivilegeRepairs } from '../../src/db/column-repairs.ts'
import { migrate } from '../../src/db/migrate.ts'
import { createCapabilitySigner } from '../../src/db/sign-capability.ts'
import { setup } from '../../src/db/setup.ts'
import { definePolicies } from '../../src/sql/policies.ts'
import { capability, notesPolicies } from './helpers/keyhole.ts'
import { buildApp } from '../plugins/helpers/app.ts'
import { startApp } from '../plugins/helpers/express-app.ts'
import { createHiddenColumnDatabase, hiddenNotesPolicies } from './helpers/hidden-columns.ts'

const h = await createHiddenColumnDatabase(t)
const r = `"${h.runtime.name}"`
const runtime = new pg.Client({ connectionString: h.runtimeUrl })
await runtime.connect()
t.teardown(() => runtime.end())
const signer = createCapabilitySigner(h.signingKey)
const alice = capability({
  subject: 'alice',
  groups: { member: [h.groupA], moderator: [h.groupA] },
})

/** Runs `statement` as the runtime role under alice's capability, rolled back. */
async function asAlice(statement: string) {
  await runtime.query('BEGIN')
  try {
    await runtime.query('SELECT keyhole.set_capability($1)', [signer.sign(alice)])
    return (await runtime.query(statement)).rows
  } finally {
    await runtime.query('ROLLBACK')
  }
}

/** The codes checkDatabase reports as the runtime role. */
async function check(options: CheckDatabaseOptions = h.checks) {
  return checkDatabase(runtime, options)
}
const codes = async (options?: CheckDatabaseOptions) =>
  (await check(options)).map((f) => f.code).sort()

/** The table's and its columns' ACLs: what "nothing changed" compares. */
async function acls() {
  const { rows } = await h.db.pool.query<{ acl: string }>(
    `SELECT (SELECT relacl::text FROM pg_class WHERE oid = 'public.notes'::regclass) || ' '
       || string_agg(attname || '=' || coalesce(attacl::text, ''), ' ' ORDER BY attnum) AS acl
     FROM pg_attribute WHERE attrelid = 'public.notes'::regclass AND attnum > 0 AND NOT attisdropped`,
  )
  return rows[0]!.acl
}

const denied = { code: '42501' }
const policiesModule = fileURLToPath(new URL('./helpers/hidden-notes-policies.js', import.meta.url))

t.test('the runtime role reaches every column but the hidden one, under RLS', async (t) => {
  t.same(await asAlice('SELECT owner, body FROM notes ORDER BY id'), [
    { owner: 'alice', body: 'a' },
  ])
  t.same(
    await asAlice('SELECT count(*)::int AS n FROM notes'),
    [{ n: 1 }],
    "RLS: group B's note unseen",
  )
  t.same(
    await asAlice(
      `INSERT INTO notes (group_id, owner, body) VALUES ('${h.groupA}', 'alice', 'c') RETURNING body`,
    ),
    [{ body: 'c' }],
  )
  t.same(await asAlice(`UPDATE notes SET body = 'z' RETURNING id`), [{ id: 1 }])
  t.same(await asAlice(`DELETE FROM notes RETURNING id`), [{ id: 1 }])
  for (const statement of [
    'SELECT secret FROM notes',
    'SELECT * FROM notes',
    'SELECT notes FROM notes',
    `SELECT id FROM notes WHERE secret = 'hash of alice'`,
    `EXPLAIN SELECT id FROM notes WHERE secret = 'hash of alice'`,
    `INSERT INTO notes (group_id, owner, body, secret) VALUES ('${h.groupA}', 'alice', 'c', 's')`,
    `UPDATE notes SET secret = 's'`,
    `UPDATE notes SET body = 'z' RETURNING secret`,
    `DELETE FROM notes RETURNING *`,
  ]) {
    await t.rejects(asAlice(statement), denied, statement)
  }
  t.same(await check(), [], 'the start-up checks pass')
})

t.test('applied again, by migrate, or setup run again: nothing changes', async (t) => {
  const before = await acls()
  t.match(before, new RegExp(`^\\{[^}]*${h.runtime.name}=d/[^}]*\\} id=\\{${h.runtime.name}=arw/`))
  t.match(before, / secret=$/, 'no grant at all on the hidden column')
  await h.applyPolicies()
  t.equal(await acls(), before, 'applyPolicies')
  await migrate(h.migratorUrl, { policies: hiddenNotesPolicies, runtimeRole: h.runtime.name })
  t.equal(await acls(), before, 'keyhole migrate')
  const again = await setup(h.db.url, {
    migrationRole: h.migrator,
    runtimeRole: h.runtime,
    signingKey: false,
  })
  t.same(again.repairs, [], 'setup repaired nothing')
  t.equal(await acls(), before, 'keyhole setup did not give the table-level grant back')
  t.same(await check(), [])
})

t.test('migrate reports the privileges on a hidden column it revoked', async (t) => {
  await h.db.pool.query(
    `GRANT SELECT, UPDATE ON notes TO ${r}; GRANT REFERENCES (secret) ON notes TO ${r}`,
  )
  const result = await migrate(h.migratorUrl, {
    policies: hiddenNotesPolicies,
    runtimeRole: h.runtime.name,
  })
  t.same(result.repairs, [
    {
      code: 'KH_DB_COLUMN_PRIVILEGE',
      message: `the runtime role "${h.runtime.name}" held REFERENCES, SELECT, UPDATE on the hidden column secret of notes: revoked (its other columns granted one by one)`,
    },
  ])
  t.same(await check(), [], 'and the checks pass')
  const client = new pg.Client({ connectionString: h.migratorUrl })
  await client.connect()
  t.teardown(() => client.end())
  await h.db.pool.query(`GRANT SELECT ON notes TO ${r}`)
  t.same(
    await columnPrivilegeRepairs(client, hiddenNotesPolicies, h.runtime.name, [undefined]),
    [],
    'a table the same run created is new, not drift',
  )
  t.same(
    await columnPrivilegeRepairs(client, notesPolicies, h.runtime.name, [undefined]),
    [],
    'no hidden column: nothing to read',
  )
  await h.applyPolicies()
})

t.test('a column added later: KH_DB_COLUMN_NOT_GRANTED until the policy SQL runs', async (t) => {
  await h.asMigrator('ALTER TABLE notes ADD COLUMN tag text, ADD COLUMN label text')
  t.teardown(() => h.asMigrator('ALTER TABLE notes DROP COLUMN tag, DROP COLUMN label'))
  await t.rejects(asAlice('SELECT tag FROM notes'), denied)
  const findings = await check()
  t.same(
    findings.map((f) => f.code),
    ['KH_DB_COLUMN_NOT_GRANTED', 'KH_DB_COLUMN_NOT_GRANTED', 'KH_DB_COLUMN_NOT_GRANTED'],
    'SELECT, INSERT and UPDATE',
  )
  t.match(findings[0], {
    message:
      /holds SELECT on some columns of public\.notes but not on tag, label, not hidden .*naming them fail with 42501$/,
    fix: new RegExp(
      `keyhole migrate.*; or GRANT SELECT \\(tag, label\\) ON public\\.notes TO ${h.runtime.name};`,
    ),
  })
  await h.applyPolicies()
  t.same(await asAlice('SELECT tag, label FROM notes'), [{ tag: null, label: null }])
  t.same(await check(), [], 'repaired by the policy SQL')
})

t.test('a hidden column the table lacks fails the policy SQL', async (t) => {
  const misspelt = definePolicies({
    notes: {
      ...hiddenNotesPolicies.tables.notes,
      columns: { read: { member: ['id'] }, hidden: ['secret', 'secrets'] },
    },
  })
  const before = await acls()
  await t.rejects(h.applyPolicies(misspelt), {
    message: 'keyhole: the hidden column(s) secrets of notes do not exist',
  })
  t.equal(await acls(), before, 'rolled back: nothing changed')
})

t.test(
  'a SECURITY DEFINER function of the migration role answers about the hidden column',
  async (t) => {
    // The recipe of docs/columns.md: the owner reads the column (a policy for it: FORCE ROW LEVEL
    // SECURITY applies the policies to the owner too) and returns only the answer.
    await h.asMigrator(`
    CREATE POLICY notes_secret_check ON notes FOR SELECT TO "${h.migrator.name}" USING (true);
    CREATE FUNCTION public.secret_matches(note_id integer, candidate text) RETURNS boolean
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
      AS $$ SELECT coalesce((SELECT secret = 'hash of ' || candidate FROM public.notes
        WHERE id = note_id), false) $$;
    REVOKE ALL ON FUNCTION public.secret_matches(integer, text) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION public.secret_matches(integer, text) TO ${r};`)
    t.teardown(() =>
      h.asMigrator(
        'DROP FUNCTION public.secret_matches(integer, text); DROP POLICY notes_secret_check ON notes',
      ),
    )
    const { rows } = await runtime.query(
      `SELECT public.secret_matches(1, 'alice') AS yes, public.secret_matches(1, 'bob') AS no`,
    )
    t.same(rows, [{ yes: true, no: false }], 'as the runtime role, outside any capability')
    await t.rejects(
      asAlice('SELECT secret FROM notes'),
      denied,
      'the column itself stays out of reach',
    )
    t.same(await codes(), ['KH_DB_SECURITY_DEFINER'], 'not listed: reported as any other')
    const listed = {
      ...h.checks,
      keyholeFunctions: [
        ...(h.checks.keyholeFunctions ?? []),
        'public.secret_matches(integer,text)',
      ],
    }
    t.same(await check(listed), [], 'listed with keyholeFunctions: held to their rules, and passes')
  },
)

interface Case {
  name: string
  break: string
  /** The fix the finding names, run as the superuser (none: apply the policy SQL again). */
  fix?: RegExp
  message: RegExp
  /** Other findings the same break causes, and why. */
  also?: string[]
  cleanup?: string
}

const other = `"${h.db.prefix}_reader"`
await h.db.pool.query(`CREATE ROLE ${other} NOLOGIN`)

const cases: Case[] = [
  {
    name: 'a table-level grant to the runtime role',
    break: `GRANT SELECT, UPDATE ON notes TO ${r}`,
    message:
      /holds SELECT, UPDATE on the hidden column secret of public\.notes \(a table-level grant to it\)/,
  },
  {
    name: 'a column grant to the runtime role',
    break: `GRANT SELECT (secret) ON notes TO ${r}`,
    message: /holds SELECT on the hidden column secret of public\.notes \(a column grant to it\)/,
    fix: new RegExp(`^REVOKE SELECT \\(secret\\) ON public\\.notes FROM ${h.runtime.name};$`),
  },
  {
    name: 'REFERENCES on the column',
    break: `GRANT REFERENCES (secret) ON notes TO ${r}`,
    message: /holds REFERENCES on the hidden column secret/,
    fix: /^REVOKE REFERENCES \(secret\) ON public\.notes FROM \S+;$/,
    also: ['KH_DB_TABLE_PRIVILEGE'], // REFERENCES on a guarded table: check 4's too
  },
  {
    name: 'a column grant to a role it is a member of (without INHERIT: it may SET ROLE)',
    break: `GRANT UPDATE (secret) ON notes TO ${other}; GRANT ${other} TO ${r} WITH INHERIT FALSE`,
    message: new RegExp(
      `holds UPDATE on the hidden column secret .*a column grant to ${h.db.prefix}_reader, a role it is a member of`,
    ),
    fix: new RegExp(`^REVOKE UPDATE \\(secret\\) ON public\\.notes FROM ${h.db.prefix}_reader;$`),
    cleanup: `REVOKE ${other} FROM ${r}`,
  },
  {
    name: 'a table-level grant to a role it is a member of',
    break: `GRANT SELECT ON notes TO ${other}; GRANT ${other} TO ${r}`,
    message: /a table-level grant to \S+_reader, a role it is a member of/,
    fix: new RegExp(`^REVOKE ${h.db.prefix}_reader FROM ${h.runtime.name}; \\(keyhole setup`),
    cleanup: `REVOKE SELECT ON notes FROM ${other}`,
  },
  {
    name: 'a column grant to PUBLIC',
    break: `GRANT SELECT (secret) ON notes TO PUBLIC`,
    message:
      /holds SELECT on the hidden column secret of public\.notes \(a column grant to PUBLIC\)/,
    fix: /^REVOKE SELECT \(secret\) ON public\.notes FROM PUBLIC;$/,
  },
  {
    name: 'a table-level grant to PUBLIC',
    break: `GRANT INSERT ON notes TO PUBLIC`,
    message:
      /holds INSERT on the hidden column secret of public\.notes \(a table-level grant to PUBLIC\)/,
    fix: /^REVOKE INSERT ON public\.notes FROM PUBLIC;$/,
  },
]

for (const c of cases) {
  t.test(`KH_DB_COLUMN_PRIVILEGE: ${c.name}: break → detect → fix`, async (t) => {
    await h.db.pool.query(c.break)
    const findings = await check()
    t.same(findings.map((f) => f.code).sort(), ['KH_DB_COLUMN_PRIVILEGE', ...(c.also ?? [])].sort())
    const found = findings.find((f) => f.code === 'KH_DB_COLUMN_PRIVILEGE')!
    t.match(found.message, c.message)
    if (c.fix === undefined) {
      t.match(found.fix, /^apply keyhole's generated policy SQL again \(keyhole migrate/)
      await h.applyPolicies()
    } else {
      t.match(found.fix, c.fix)
      await h.db.pool.query(found.fix.replace(/ \(keyhole setup.*$/, ''))
    }
    t.same(await check(), [], 'fixed: no finding')
    if (c.cleanup) await h.db.pool.query(c.cleanup)
  })
}

t.test('every way at once: one finding, each way with its fix', async (t) => {
  await h.db.pool.query(`GRANT SELECT ON notes TO ${r}; GRANT SELECT (secret) ON notes TO PUBLIC`)
  const [found, ...rest] = await check()
  t.same(rest, [])
  t.match(found, {
    code: 'KH_DB_COLUMN_PRIVILEGE',
    message: /\(a table-level grant to it; a column grant to PUBLIC\)/,
    fix: /^apply keyhole's .* hidden ones REVOKE SELECT \(secret\) ON public\.notes FROM PUBLIC;$/,
  })
  await h.db.pool.query(`REVOKE SELECT (secret) ON notes FROM PUBLIC`)
  await h.applyPolicies()
  t.same(await check(), [])
})

t.test(
  'a column no longer hidden: KH_DB_COLUMN_NOT_GRANTED, fixed by a table-level grant',
  async (t) => {
    // The policies hide nothing now, so their SQL leaves the table alone: secret stays withheld.
    const unhidden = { ...h.checks, policies: notesPolicies }
    const findings = await check(unhidden)
    t.same(
      findings.map((f) => f.code),
      Array(3).fill('KH_DB_COLUMN_NOT_GRANTED'),
    )
    t.match(
      findings.map((f) => f.fix),
      [
        `GRANT SELECT ON public.notes TO ${h.runtime.name}; (the table hides no column now)`,
        `GRANT INSERT ON public.notes TO ${h.runtime.name}; (the table hides no column now)`,
        `GRANT UPDATE ON public.notes TO ${h.runtime.name}; (the table hides no column now)`,
      ],
    )
    for (const f of findings) await h.db.pool.query(f.fix.replace(/ \(the table.*$/, ''))
    t.same(await check(unhidden), [], 'fixed')
    t.same(await asAlice('SELECT secret FROM notes'), [{ secret: 'hash of alice' }])
    await h.applyPolicies()
    t.same(await check(), [], 'hidden again')
  },
)

t.test('hiddenColumns names them without the policies', async (t) => {
  const named: CheckDatabaseOptions = {
    ...h.checks,
    policies: undefined,
    hiddenColumns: [{ table: 'public.notes', columns: ['secret'] }],
  }
  t.same(await check(named), [])
  t.same(await check({ ...named, guardedTables: [], hiddenColumns: [] }), [], 'no table: no query')
  await h.db.pool.query(`GRANT SELECT ON notes TO ${r}`)
  t.same(await codes(named), ['KH_DB_COLUMN_PRIVILEGE'])
  await h.applyPolicies()
})

t.test(
  'start-up refused on both adapters while the runtime role holds a hidden column',
  async (t) => {
    const options = () => {
      const pool = h.runtimePool(1)
      pool.on('error', () => {})
      return {
        database: { pool, policies: hiddenNotesPolicies, signingKey: h.signingKey },
        checks: { migrationRole: h.migrator.name },
        monitor: false,
      } as const
    }
    const refused = {
      code: 'KH_INSECURE_DATABASE',
      message:
        /KH_DB_COLUMN_PRIVILEGE: the runtime role \S+ holds SELECT on the hidden column secret/,
      findings: [{ code: 'KH_DB_COLUMN_PRIVILEGE' }],
    }
    await h.db.pool.query(`GRANT SELECT (secret) ON notes TO ${r}`)
    await t.rejects(buildApp(t, options()), refused, 'Fastify')
    const { keyhole } = await startApp(t, options(), () => {}, { ready: false })
    await t.rejects(keyhole.ready(), refused, 'Express')
    await h.db.pool.query(`REVOKE SELECT (secret) ON notes FROM ${r}`)
    const { app } = await buildApp(t, options())
    t.equal(app.keyhole.healthy, true, 'fixed: Fastify starts')
    await t.resolves(keyhole.ready(), 'fixed: Express is ready')
  },
)

t.test('keyhole check prints the finding and its fix', async (t) => {
  const out: string[] = []
  const check = ['check', '--policies', policiesModule, '--migration-role', h.migrator.name]
  const cli = () =>
    run(check, {
      env: { KEYHOLE_RUNTIME_URL: h.runtimeUrl },
      out: (l) => out.push(l),
      err: () => {},
    })
  await h.db.pool.query(`GRANT SELECT ON notes TO ${r}`)
  t.equal(await cli(), 1)
  t.match(
    out.join('\n'),
    /^keyhole check: 1 finding\(s\)\n {2}- KH_DB_COLUMN_PRIVILEGE: .*hidden column secret of public\.notes.*\n {4}fix: apply keyhole's generated policy SQL again/,
  )
  await h.applyPolicies()
  out.length = 0
  t.equal(await cli(), 0)
  t.same(out, [
    'keyhole check: no findings (1 guarded table(s))',
    'keyhole check: capability store: sealed',
  ])
})
