/**
 * The sealed capability's privilege (sql/000003): setup grants SET on `backtrace_functions` to the
 * migration role and never to the runtime role, and says which store is in use; the start-up
 * checks refuse a runtime role that may write the parameter (its repair closes it); an install
 * made before 000003 upgrades through `migrate` (the signed store) and is sealed once setup runs
 * again. The store is installed once, at setup (sql/000004): a grant revoked afterwards is the
 * finding KH_DB_CAPABILITY_STORE_MISMATCH (requests refused, never widened), and so are functions
 * of both stores. The attacks on both stores are in keyhole-schema.test.ts.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { capabilityStore, checkDatabase } from '../../src/db/check-database.ts'
import { KEYHOLE_FUNCTIONS, keyholeSqlDirectory } from '../../src/db/keyhole-sql.ts'
import { migrate } from '../../src/db/migrate.ts'
import { setup } from '../../src/db/setup.ts'
import { sealCapabilityParameter } from '../../src/db/setup-sealed.ts'
import { createCapabilitySigner } from '../../src/db/sign-capability.ts'
import { capability, createKeyholeDatabase, onParameterPrivileges } from './helpers/keyhole.ts'
import { monitoredNotesApp } from './helpers/monitored-notes-app.ts'

const k = await createKeyholeDatabase(t)
const su = k.db.pool
const [m, r] = [k.migrator.name, k.runtime.name]
const runtime = new pg.Client({ connectionString: k.runtimeUrl })
await runtime.connect()
t.teardown(() => runtime.end())
const signer = createCapabilitySigner(k.signingKey)
const again = () =>
  setup(k.db.url, { migrationRole: k.migrator, runtimeRole: k.runtime, signingKey: false })
const checks = {
  guardedTables: [
    { table: 'public.notes', operations: ['select', 'insert', 'update', 'delete'] as const },
  ],
  migrationRole: m,
  keyholeFunctions: [...KEYHOLE_FUNCTIONS],
}
const storeFindings = async () =>
  (await checkDatabase(runtime, checks)).filter((f) => f.code === 'KH_DB_CAPABILITY_STORE_MISMATCH')
/** Runs sql/000004's installer as the migration role, as setup does; returns the store. */
async function install(): Promise<string> {
  const migrator = new pg.Client({ connectionString: k.migratorUrl })
  await migrator.connect()
  try {
    return (await migrator.query('SELECT keyhole.install_capability_store() AS s')).rows[0].s
  } finally {
    await migrator.end()
  }
}
const parameterFindings = async () =>
  (await checkDatabase(runtime, checks)).filter(
    (f) => f.code === 'KH_DB_CAPABILITY_PARAMETER_WRITABLE',
  )

/** The privileges each role holds on the parameter. */
async function privileges() {
  const { rows } = await su.query(
    `SELECT r AS role, has_parameter_privilege(r, 'backtrace_functions', 'SET') AS set,
       has_parameter_privilege(r, 'backtrace_functions', 'ALTER SYSTEM') AS alter_system
     FROM unnest($1::text[]) AS r`,
    [[m, r]],
  )
  return rows
}

/** Where set_capability put alice's capability, and what the policies make of it. */
async function stored(client: pg.Client = runtime) {
  await client.query('BEGIN')
  try {
    await client.query('SELECT keyhole.set_capability($1)', [
      signer.sign(capability({ subject: 'alice', groups: { member: [k.groupA] } })),
    ])
    const { rows } = await client.query(
      `SELECT current_setting('backtrace_functions') LIKE 'keyhole\\_%' AS sealed,
         current_setting('backtrace_functions') NOT LIKE 'keyhole\\_%'
           AND coalesce(current_setting('keyhole.capability', true), '') <> '' AS signed,
         ARRAY(SELECT body FROM notes ORDER BY id) AS bodies`,
    )
    return rows[0]
  } finally {
    await client.query('ROLLBACK')
  }
}

t.test('setup grants SET on backtrace_functions to the migration role alone', async (t) => {
  t.same(await privileges(), [
    { role: m, set: true, alter_system: false },
    { role: r, set: false, alter_system: false },
  ])
  const result = await again()
  t.equal(result.capabilityStore, 'sealed', 'setup names the store')
  t.same(result.repairs, [], 'nothing to repair')
  t.equal(await capabilityStore(runtime), 'sealed', 'the runtime role reads the store')
  t.same(await stored(), { sealed: true, signed: false, bodies: ['a'] })
  t.same(await parameterFindings(), [])
  t.same(await storeFindings(), [])
  const { rows } = await su.query(
    `SELECT count(*)::int AS n FROM pg_proc WHERE pronamespace = 'keyhole'::regnamespace
       AND prosrc LIKE '%has\\_parameter\\_privilege%' AND proname <> 'install_capability_store'`,
  )
  t.equal(rows[0].n, 0, 'decided at setup: no function asks for the privilege on a request')
})

t.test('an administrator who may not grant it: the signed store, setup carries on', async (t) => {
  // setup's step on a connection of a role holding no grant option (here the runtime role).
  await onParameterPrivileges(su, `REVOKE SET ON PARAMETER backtrace_functions FROM ${m}`)
  t.teardown(() => onParameterPrivileges(su, `GRANT SET ON PARAMETER backtrace_functions TO ${m}`))
  t.same(await sealCapabilityParameter(runtime as never, m, r, (n) => `"${n}"`), {
    store: 'signed',
    repairs: [],
  })
  t.same(await privileges(), [
    { role: m, set: false, alter_system: false },
    { role: r, set: false, alter_system: false },
  ])
})

t.test('a grant revoked after setup: requests refused, never widened, and a finding', async (t) => {
  await onParameterPrivileges(su, `REVOKE SET ON PARAMETER backtrace_functions FROM ${m}`)
  t.teardown(async () => {
    await onParameterPrivileges(su, `GRANT SET ON PARAMETER backtrace_functions TO ${m}`)
    await install()
  })
  t.equal(await capabilityStore(runtime), 'sealed', 'the sealed variant is still installed')
  await runtime.query('BEGIN')
  await t.rejects(
    runtime.query('SELECT keyhole.set_capability($1)', [
      signer.sign(capability({ subject: 'alice', groups: { member: [k.groupA] } })),
    ]),
    { code: '42501' },
    'set_capability is refused: the request fails, it is not served without its capability',
  )
  await runtime.query('ROLLBACK')
  const found = await storeFindings()
  t.equal(found.length, 1)
  t.match(found[0], {
    message: new RegExp(`its owner ${m} no longer holds SET on that parameter`),
    fix: new RegExp(
      `^GRANT SET ON PARAMETER backtrace_functions TO ${m}; \\(as a superuser\\), or run \`keyhole setup\` again`,
    ),
  })
  // The repair without the grant: setup (here its installer) puts the signed store in place.
  t.equal(await install(), 'signed')
  t.equal(await capabilityStore(runtime), 'signed')
  t.same(await stored(), { sealed: false, signed: true, bodies: ['a'] }, 'the signed store works')
  t.same(await storeFindings(), [])
  // And the grant back, with setup: sealed again.
  await onParameterPrivileges(su, `GRANT SET ON PARAMETER backtrace_functions TO ${m}`)
  t.same(await storeFindings(), [], 'the signed store with a grant is no finding')
  t.equal((await again()).capabilityStore, 'sealed')
  t.same(await stored(), { sealed: true, signed: false, bodies: ['a'] })
})

t.test(
  'the monitor: a grant revoked after setup turns /health to 503, the repair back',
  async (t) => {
    const { app, alice } = await monitoredNotesApp(t, k, k.runtimePool(2))
    await onParameterPrivileges(su, `REVOKE SET ON PARAMETER backtrace_functions FROM ${m}`)
    t.teardown(async () => {
      await onParameterPrivileges(su, `GRANT SET ON PARAMETER backtrace_functions TO ${m}`)
      await install()
    })
    while (app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 503)
    t.not(
      (await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode,
      200,
      'refused, never served without the capability',
    )
    t.equal(await install(), 'signed', 'the repair without the grant: the signed store')
    while (!app.keyhole.healthy) await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal((await app.inject({ method: 'GET', url: '/notes', headers: alice })).statusCode, 200)
  },
)

t.test('capability functions of two stores are a finding (no capability either way)', async (t) => {
  // The signed variant's subject() beside the sealed variant's other functions.
  const source = await readFile(
    join(keyholeSqlDirectory(), '000004.do.keyhole-capability-store.sql'),
    'utf8',
  )
  const subjects = source.match(
    /CREATE OR REPLACE FUNCTION keyhole\.subject\(\)[\s\S]*?\n\s*\$\$;/g,
  )!
  t.equal(subjects.length, 2)
  const migrator = new pg.Client({ connectionString: k.migratorUrl })
  await migrator.connect()
  t.teardown(() => migrator.end())
  await migrator.query(subjects[1]!)
  const found = await storeFindings()
  t.equal(found.length, 1)
  t.match(found[0], { message: /are of two stores \(3 of 4 read the sealed backtrace_functions\)/ })
  t.equal((await again()).capabilityStore, 'sealed', 'setup installs one store again')
  t.same(await storeFindings(), [])
})

t.test(
  'a runtime role that may write backtrace_functions is refused; the fix closes it',
  async (t) => {
    const cases: [string, string, RegExp, string][] = [
      [
        'SET granted to it',
        `GRANT SET ON PARAMETER backtrace_functions TO ${r}`,
        /\(directly\)/,
        `REVOKE SET, ALTER SYSTEM ON PARAMETER backtrace_functions FROM ${r}; (as a superuser; keyhole setup does)`,
      ],
      [
        'ALTER SYSTEM granted to it',
        `GRANT ALTER SYSTEM ON PARAMETER backtrace_functions TO ${r}`,
        /\(directly\)/,
        `REVOKE SET, ALTER SYSTEM ON PARAMETER backtrace_functions FROM ${r}; (as a superuser; keyhole setup does)`,
      ],
      [
        'SET granted to a role it is a member of (NOINHERIT)',
        `CREATE ROLE ${k.db.prefix}_debug; GRANT SET ON PARAMETER backtrace_functions TO ${k.db.prefix}_debug;
       GRANT ${k.db.prefix}_debug TO ${r} WITH INHERIT FALSE`,
        new RegExp(`as a member of ${k.db.prefix}_debug`),
        `REVOKE ${k.db.prefix}_debug FROM ${r};`,
      ],
    ]
    for (const [name, arrange, message, fix] of cases) {
      await onParameterPrivileges(su, arrange)
      const found = await parameterFindings()
      t.equal(found.length, 1, name)
      t.match(found[0], { message, fix }, `${name}: message and fix`)
      await onParameterPrivileges(su, fix.replace(/ \(as a superuser.*$/, ''))
      t.same(await parameterFindings(), [], `${name}: closed by its fix`)
    }
    await onParameterPrivileges(
      su,
      `DROP OWNED BY ${k.db.prefix}_debug; DROP ROLE ${k.db.prefix}_debug`,
    )
  },
)

t.test('a copied value made a default of the runtime role is a finding', async (t) => {
  await su.query(`ALTER ROLE ${r} SET backtrace_functions = 'keyhole_1_1_31'`)
  const findings = await checkDatabase(runtime, checks)
  await su.query(`ALTER ROLE ${r} RESET backtrace_functions`)
  t.equal(findings.length, 1)
  t.match(findings[0], {
    code: 'KH_DB_ROLE_SETTING',
    fix: new RegExp(`^ALTER ROLE ${r} RESET backtrace_functions;`),
  })
})

t.test('setup again revokes SET and ALTER SYSTEM on it from the runtime role', async (t) => {
  await onParameterPrivileges(
    su,
    `GRANT SET, ALTER SYSTEM ON PARAMETER backtrace_functions TO ${r}`,
  )
  t.equal((await parameterFindings()).length, 1)
  const result = await again()
  t.same(result.repairs, [
    {
      code: 'KH_DB_CAPABILITY_PARAMETER_WRITABLE',
      message:
        'revoked SET and ALTER SYSTEM on the parameter backtrace_functions from the runtime role',
    },
  ])
  t.same((await privileges())[1], { role: r, set: false, alter_system: false })
  t.same(await parameterFindings(), [])
})

t.test('a GRANT on the parameter open in another session: setup waits, then grants', async (t) => {
  // The parameter's privileges are one row for the cluster: another database's setup (here an
  // open transaction granting it to another role) holds it until it commits.
  await onParameterPrivileges(su, `REVOKE SET ON PARAMETER backtrace_functions FROM ${m}`)
  const other = `${k.db.prefix}_racer`
  await su.query(`CREATE ROLE ${other}`)
  const blocker = await su.connect()
  await blocker.query('BEGIN')
  await blocker.query(`GRANT SET ON PARAMETER backtrace_functions TO ${other}`)
  const running = again()
  for (let waiting = false; !waiting;) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const { rows } = await su.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE wait_event_type = 'Lock' AND query LIKE 'GRANT SET ON PARAMETER backtrace_functions TO "${m}"'`,
    )
    waiting = rows[0].n === 1
  }
  await blocker.query('COMMIT')
  blocker.release()
  t.equal((await running).capabilityStore, 'sealed')
  t.same((await privileges())[0], { role: m, set: true, alter_system: false })
  await onParameterPrivileges(su, `DROP OWNED BY ${other}; DROP ROLE ${other}`)
})

t.test('an install made before 000003 upgrades through migrate', async (t) => {
  // Back to what 000001 installed: its four functions, version 3 not applied, no grant.
  const source = await readFile(join(keyholeSqlDirectory(), '000001.do.keyhole-schema.sql'), 'utf8')
  const old = source.match(
    /CREATE FUNCTION keyhole\.(set_capability|group_ids|is_admin|subject)\([\s\S]*?\n\$\$;/g,
  )!
  t.equal(old.length, 4)
  const migrator = new pg.Client({ connectionString: k.migratorUrl })
  await migrator.connect()
  t.teardown(() => migrator.end())
  await migrator.query(old.map((f) => f.replace('CREATE', 'CREATE OR REPLACE')).join('\n'))
  await migrator.query('DROP FUNCTION keyhole.install_capability_store()')
  await migrator.query('DROP FUNCTION keyhole.sets_unique_key(regclass, name[])')
  await migrator.query('DELETE FROM keyhole.schemaversion WHERE version IN (3, 4, 5)')
  await onParameterPrivileges(su, `REVOKE SET ON PARAMETER backtrace_functions FROM ${m}`)
  t.equal(await capabilityStore(runtime), 'signed')
  t.same(await stored(), { sealed: false, signed: true, bodies: ['a'] }, 'before: 000001')

  t.same((await migrate(k.migratorUrl)).keyhole, [3, 4, 5], 'migrate applies 000003 to 000005')
  t.equal(await capabilityStore(runtime), 'signed', 'no grant yet: the signed store')
  t.same(await stored(), { sealed: false, signed: true, bodies: ['a'] })

  t.equal((await again()).capabilityStore, 'sealed', 'setup again grants it')
  t.equal(await capabilityStore(runtime), 'sealed')
  t.same(await stored(), { sealed: true, signed: false, bodies: ['a'] }, 'sealed from now on')
  t.same(
    await stored(
      await (async () => {
        const c = new pg.Client({ connectionString: k.runtimeUrl })
        await c.connect()
        t.teardown(() => c.end())
        return c
      })(),
    ),
    { sealed: true, signed: false, bodies: ['a'] },
    'on a new connection too',
  )
})
