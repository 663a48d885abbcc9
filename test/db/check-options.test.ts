import t from 'tap'
import { resolveCheckOptions, type CheckDatabaseOptions } from '../../src/db/checks/options.ts'
import { functionNameOf, schemaOf } from '../../src/db/checks/names.ts'
import { ident } from '../../src/db/checks/context.ts'
import { resetStatement } from '../../src/db/checks/settings.ts'
import { inGroup } from '../../src/sql/guard.ts'
import { definePolicies } from '../../src/sql/policies.ts'

const table = { table: 'public.posts', operations: ['select'] } as const
const policies = definePolicies({ posts: { read: inGroup('group_id', 'member') } })

t.test('defaults are filled and the result is frozen; the input is not touched', async (t) => {
  const input: CheckDatabaseOptions = {
    guardedTables: [{ table: 'public.posts', operations: ['select', 'select', 'update'] }],
  }
  const copy = structuredClone(input)
  const resolved = resolveCheckOptions(input)
  t.same(input, copy)
  t.same(resolved, {
    guardedTables: [{ table: 'public.posts', operations: ['select', 'update'] }],
    migrationRole: undefined,
    applicationSchemas: undefined,
    unguardedTables: [],
    capabilitySetting: 'keyhole.capability',
    keyholeFunctions: [
      { signature: 'keyhole.set_capability(text)' },
      { signature: 'keyhole.group_ids(text)' },
      { signature: 'keyhole.is_admin()' },
      { signature: 'keyhole.subject()' },
      { signature: 'keyhole.set_system(text)' },
      { signature: 'keyhole.system_allows(text,text)' },
      { signature: 'keyhole.sets_unique_key(regclass,name[])' },
    ],
    signingKeyTable: 'keyhole.signing_key',
    minimumServerVersion: 140000,
    policies: undefined,
    groupIdType: 'uuid',
    hiddenColumns: [],
    allowedSettings: {},
    mode: 'rls',
    tls: 'remote',
  })
  t.ok(Object.isFrozen(resolved))
  t.ok(Object.isFrozen(resolved.allowedSettings))
  t.ok(Object.isFrozen(resolved.guardedTables[0]?.operations))
  const custom = resolveCheckOptions({
    guardedTables: [table],
    applicationSchemas: ['app'],
    keyholeFunctions: [
      'keyhole.f(text)',
      { signature: 'keyhole.g()', sourceSha256: 'a'.repeat(64) },
    ],
    signingKeyTable: false,
    policies,
    groupIdType: 'bigint',
    allowedSettings: { Statement_Timeout: '30s', 'app.Region': 'eu' },
    mode: 'guard',
  })
  t.same(
    { ...custom.allowedSettings },
    { statement_timeout: '30s', 'app.region': 'eu' },
    'names as PostgreSQL folds them, values exactly as given',
  )
  t.equal(custom.allowedSettings.constructor, undefined, 'no inherited names')
  t.equal(custom.mode, 'guard')
  t.equal(custom.policies, policies, 'the policies as given (definePolicies froze them)')
  t.equal(custom.groupIdType, 'bigint')
  t.same(custom.keyholeFunctions, [
    { signature: 'keyhole.f(text)' },
    { signature: 'keyhole.g()', sourceSha256: 'a'.repeat(64) },
  ])
  t.equal(custom.signingKeyTable, false)
  t.same(custom.applicationSchemas, ['app'])
})

t.test('bad options: KH_INVALID_OPTIONS naming the option', async (t) => {
  const bad: [string, unknown][] = [
    ['guardedTables', {}],
    ['guardedTables.0.table', { guardedTables: [{ table: 'posts', operations: ['select'] }] }],
    ['guardedTables.0.table', { guardedTables: [{ table: 'a.b.c', operations: ['select'] }] }],
    ['guardedTables.0.table', { guardedTables: [{ table: 'a.b;drop', operations: ['select'] }] }],
    ['guardedTables.0.operations', { guardedTables: [{ table: 'a.b', operations: [] }] }],
    [
      'guardedTables.0.operations.0',
      { guardedTables: [{ table: 'a.b', operations: ['truncate'] }] },
    ],
    ['guardedTables.0.extra', { guardedTables: [{ ...table, extra: 1 }] }],
    ['surprise', { guardedTables: [], surprise: true }],
    ['migrationRole', { guardedTables: [], migrationRole: '' }],
    ['applicationSchemas.0', { guardedTables: [], applicationSchemas: [''] }],
    ['unguardedTables.0', { guardedTables: [], unguardedTables: ['notes'] }],
    ['capabilitySetting', { guardedTables: [], capabilitySetting: 'nodot' }],
    ['keyholeFunctions.0', { guardedTables: [], keyholeFunctions: ['keyhole.f'] }],
    ['keyholeFunctions.0', { guardedTables: [], keyholeFunctions: ['f(); drop'] }],
    [
      'keyholeFunctions.0.sourceSha256',
      { guardedTables: [], keyholeFunctions: [{ signature: 'a.b()', sourceSha256: 'ABC' }] },
    ],
    ['signingKeyTable', { guardedTables: [], signingKeyTable: true }],
    ['minimumServerVersion', { guardedTables: [], minimumServerVersion: 14.5 }],
    ['policies', { guardedTables: [], policies: { tables: {} } }],
    ['policies', { guardedTables: [], policies: 'app.posts' }],
    ['groupIdType', { guardedTables: [], groupIdType: 'UUID' }],
    ['allowedSettings', { guardedTables: [], allowedSettings: ['statement_timeout'] }],
    ['allowedSettings.a b', { guardedTables: [], allowedSettings: { 'a b': '1' } }],
    ['allowedSettings.x', { guardedTables: [], allowedSettings: { x: 30 } }],
    [
      'allowedSettings.Keyhole.Capability',
      { guardedTables: [], allowedSettings: { 'Keyhole.Capability': 'x' } },
    ],
    [
      'allowedSettings.app.cap',
      { guardedTables: [], capabilitySetting: 'app.cap', allowedSettings: { 'app.cap': 'x' } },
    ],
    [
      'allowedSettings.row_security',
      { guardedTables: [], allowedSettings: { row_security: 'on' } },
    ],
    ['mode', { guardedTables: [], mode: 'off' }],
    ['tls', { guardedTables: [], tls: 'required' }],
  ]
  for (const [option, options] of bad) {
    t.throws(
      () => resolveCheckOptions(options as CheckDatabaseOptions),
      {
        code: 'KH_INVALID_OPTIONS',
        statusCode: 500,
        message: new RegExp(`^Invalid option checkDatabase\\.${option.replace(/\./g, '\\.')}[: ]`),
      },
      option,
    )
  }
})

t.test('qualified names split as the catalogs store them', async (t) => {
  t.equal(schemaOf('keyhole.signing_key'), 'keyhole')
  t.equal(schemaOf('App.Posts'), 'app', 'plain names fold to lower case')
  t.equal(schemaOf('"My ""App""".posts'), 'My "App"', 'quoted names keep case and unescape')
  t.equal(functionNameOf('keyhole.group_ids(text)'), 'group_ids')
  t.equal(functionNameOf('keyhole."Is Admin"()'), 'Is Admin')
  t.equal(ident('runtime_1'), 'runtime_1')
  t.equal(ident('Run"time'), '"Run""time"')
})

t.test('the statement that removes a role or database default', async (t) => {
  const name = 'keyhole.capability'
  t.equal(
    resetStatement({ database: null, all_roles: false, name }, 'rt'),
    `ALTER ROLE rt RESET ${name};`,
  )
  t.equal(
    resetStatement({ database: 'db', all_roles: false, name }, 'rt'),
    `ALTER ROLE rt IN DATABASE db RESET ${name};`,
  )
  t.equal(
    resetStatement({ database: 'db', all_roles: true, name }, 'rt'),
    `ALTER ROLE ALL IN DATABASE db RESET ${name};`,
  )
  t.equal(
    resetStatement({ database: null, all_roles: true, name }, 'rt'),
    `ALTER ROLE ALL RESET ${name};`,
  )
})
