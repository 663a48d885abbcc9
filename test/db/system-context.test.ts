/**
 * keyhole.runAsSystem (createKeyhole) on real PostgreSQL, in both modes: a declared table
 * and operation works across groups; anything else is refused before any SQL by the handle and,
 * in 'rls' mode, by the database; a call inside a request is refused unless allowed; every use
 * is published on `keyhole:system` and logged, with its caller's file:line and never a value.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { runInRequest } from '../../src/db/request-scope.ts'
import { createSessionFactory } from '../../src/db/session.ts'
import { createKeyhole } from '../../src/db/create-keyhole.ts'
import {
  callerLocation,
  framePath,
  SYSTEM_CHANNEL,
  type RunAsSystem,
  type SystemContextEvent,
  type SystemDeclaration,
} from '../../src/db/system-context.ts'
import type { PolicyHandle } from '../../src/sql/policies.ts'
import { createSystemDatabase, systemPolicies } from './helpers/system-database.ts'

const k = await createSystemDatabase(t)
const runtimePool = k.runtimePool()
const sessions = createSessionFactory({ pool: runtimePool, signingKey: k.signingKey })
const here = fileURLToPath(import.meta.url)

interface Line {
  level: 'info' | 'warn'
  details: object
  message: string
}
const lines: Line[] = []
const logger = {
  info: (details: object, message: string) => lines.push({ level: 'info', details, message }),
  warn: (details: object, message: string) => lines.push({ level: 'warn', details, message }),
}

const modes: Record<'rls' | 'guard', RunAsSystem> = {
  rls: createKeyhole({
    pool: runtimePool,
    policies: systemPolicies,
    signingKey: k.signingKey,
    logger,
  }).runAsSystem,
  // 'guard' mode on a pool that RLS does not apply to: the statement's guard is the only line.
  guard: createKeyhole({
    pool: k.db.pool,
    policies: systemPolicies,
    mode: 'guard',
    prepared: false,
  }).runAsSystem,
}

const readNotes: SystemDeclaration = {
  reason: 'count notes',
  tables: ['notes'],
  operations: ['read'],
}

/** The events published on keyhole:system while `action` runs. */
async function published(action: () => Promise<unknown>): Promise<SystemContextEvent[]> {
  const seen: SystemContextEvent[] = []
  const listener = (message: unknown) => seen.push(message as SystemContextEvent)
  subscribe(SYSTEM_CHANNEL, listener)
  try {
    await action().catch(() => {})
  } finally {
    unsubscribe(SYSTEM_CHANNEL, listener)
  }
  return seen
}

for (const [mode, runAsSystem] of Object.entries(modes)) {
  t.test(`${mode}: a declared table and operation works across groups`, async (t) => {
    await k.reset()
    const notes = await runAsSystem(readNotes, (db) =>
      db.select('notes', {}, { orderBy: [['id', 'asc']] }),
    )
    t.same(
      notes.map((n) => n.body),
      ['note a', 'note b'],
      'both groups',
    )
    const [counted, second] = await runAsSystem(readNotes, async (db) => [
      await db.count('notes'),
      await db.select('notes', {}, { orderBy: [['id', 'asc']], limit: 1, offset: 1 }),
    ])
    t.equal(counted, 2, 'count: both groups')
    t.same(
      (second as { body: string }[]).map((n) => n.body),
      ['note b'],
      'offset',
    )
    const accepted = await runAsSystem(
      { reason: 'accept an invitation', tables: ['invitations'], operations: ['read', 'update'] },
      async (db) => {
        const [invitation] = await db.select('invitations', { email: 'b@example.org' })
        return db.update('invitations', { id: invitation!.id as number }, { accepted: true })
      },
    )
    t.match(accepted, { count: 1, rows: [{ email: 'b@example.org', accepted: true }] })
    const deleted = await runAsSystem(
      { reason: 'retention', tables: ['notes'], operations: ['read', 'delete'] },
      (db) => db.delete('notes', { group_id: k.groupB }),
    )
    t.equal(deleted.count, 1)
    const logged = await runAsSystem(
      { reason: 'log', tables: ['events'], operations: ['insert'] },
      async (db) => [
        await db.insert('events', { group_id: k.groupA, body: 'one' }),
        await db.insert('events', [
          { group_id: k.groupA, body: 'two' },
          { group_id: k.groupB, body: 'three' },
        ]),
      ],
    )
    t.same(logged, [{}, { inserted: [], refused: [], count: 2 }], 'no read: nothing returned')
    const invited = await runAsSystem(
      { reason: 'invite', tables: ['invitations'], operations: ['read', 'insert'] },
      (db) => db.insert('invitations', { group_id: k.groupB, email: 'c@example.org' }),
    )
    t.match(invited, { email: 'c@example.org' }, 'with read: the row comes back')
  })

  t.test(`${mode}: the handle refuses what was not declared, before any SQL`, async (t) => {
    await k.reset()
    const attempts: [string, (db: PolicyHandle) => Promise<unknown>][] = [
      ['another table', (db) => db.select('secrets')],
      ['another operation', (db) => db.delete('notes', { id: 1 })],
      ['an update', (db) => db.update('notes', { id: 1 }, { body: 'x' })],
      ['an insert', (db) => db.insert('notes', { group_id: k.groupA, body: 'x' })],
      ['a table the policies do not know', (db) => db.select('pg_authid')],
      ['a count of another table', (db) => db.count('secrets')],
      ['raw SQL', async (db) => db.query('SELECT body FROM notes')],
      ['a guard fragment for raw SQL', async (db) => db.guard('notes', 'read')],
    ]
    for (const [name, work] of attempts) {
      await t.rejects(runAsSystem(readNotes, work), { code: 'KH_SYSTEM_NOT_DECLARED' }, name)
    }
    const { rows } = await k.db.pool.query('SELECT count(*)::int AS n FROM notes')
    t.same(rows, [{ n: 2 }], 'nothing deleted')
  })

  t.test(`${mode}: a declaration beyond the policies' system lists is refused`, async (t) => {
    const refused: [string, Partial<SystemDeclaration>][] = [
      ['a table without system', { tables: ['secrets'], operations: ['read'] }],
      ['an operation not declared', { tables: ['notes'], operations: ['read', 'update'] }],
      ['one table of two', { tables: ['notes', 'secrets'], operations: ['read'] }],
      ['an unknown table', { tables: ['nowhere'], operations: ['read'] }],
      ['a prototype key', { tables: ['__proto__'], operations: ['read'] }],
    ]
    for (const [name, declaration] of refused) {
      await t.rejects(
        runAsSystem({ reason: 'x', ...declaration } as SystemDeclaration, async () => {
          t.fail('work ran')
        }),
        { code: 'KH_SYSTEM_NOT_DECLARED' },
        name,
      )
    }
  })

  t.test(`${mode}: refused inside a request unless allowed`, async (t) => {
    await t.rejects(
      runInRequest(() => runAsSystem(readNotes, async () => t.fail('work ran'))),
      { code: 'KH_SYSTEM_IN_REQUEST' },
    )
    const rows = await runInRequest(() =>
      runAsSystem(readNotes, (db) => db.select('notes'), { allowInRequest: true }),
    )
    t.equal(rows.length, 2)
  })

  t.test(`${mode}: a failure rolls the work back`, async (t) => {
    await k.reset()
    await t.rejects(
      runAsSystem(
        { reason: 'retention', tables: ['notes'], operations: ['read', 'delete'] },
        async (db) => {
          await db.delete('notes', { group_id: k.groupA })
          throw new Error('the job failed')
        },
      ),
      { message: 'the job failed' },
    )
    const { rows } = await k.db.pool.query('SELECT count(*)::int AS n FROM notes')
    t.same(rows, [{ n: 2 }])
  })
}

t.test('bad declarations: KH_INVALID_OPTIONS before any SQL', async (t) => {
  const bad: [string, unknown, unknown?][] = [
    ['no declaration', undefined],
    ['no reason', { tables: ['notes'], operations: ['read'] }],
    ['an empty reason', { reason: '', tables: ['notes'], operations: ['read'] }],
    ['a reason of two lines', { reason: 'a\nb', tables: ['notes'], operations: ['read'] }],
    ['a long reason', { reason: 'x'.repeat(201), tables: ['notes'], operations: ['read'] }],
    ['tables not a list', { reason: 'x', tables: 'notes', operations: ['read'] }],
    ['no table', { reason: 'x', tables: [], operations: ['read'] }],
    ['a table not a string', { reason: 'x', tables: [1], operations: ['read'] }],
    ['operations not a list', { reason: 'x', tables: ['notes'], operations: 'read' }],
    ['no operation', { reason: 'x', tables: ['notes'], operations: [] }],
    ['an unknown operation', { reason: 'x', tables: ['notes'], operations: ['truncate'] }],
    ['delete without read', { reason: 'x', tables: ['notes'], operations: ['delete'] }],
    ['work not a function', readNotes, 'work'],
  ]
  for (const [name, declaration, work = async () => {}] of bad) {
    await t.rejects(
      modes.rls(declaration as SystemDeclaration, work as () => Promise<void>),
      { code: 'KH_INVALID_OPTIONS', message: /^Invalid system context: / },
      name,
    )
  }
})

t.test('raw SQL in the system context: RLS admits only the grant', async (t) => {
  await k.reset()
  const [notes, secrets, invitations] = await sessions.withSystem(['read:notes'], async (db) => [
    (await db.query('SELECT body FROM notes ORDER BY id')).rows,
    (await db.query('SELECT body FROM secrets')).rows,
    (await db.query('SELECT email FROM invitations')).rows,
  ])
  t.same(notes, [{ body: 'note a' }, { body: 'note b' }])
  t.same(secrets, [], 'an undeclared table: nothing')
  t.same(invitations, [], 'declared for system, but not in this grant: nothing')
})

t.test('each use is published and logged: names, counts, caller; never a value', async (t) => {
  await k.reset()
  lines.length = 0
  let stack = ''
  const retention = { reason: 'retention', tables: ['notes'], operations: ['read', 'delete'] }
  const work = async (db: PolicyHandle) => {
    await db.select('notes')
    await db.delete('notes', { group_id: k.groupA })
  }
  const events = await published(async () => {
    const [error, use] = [new Error(), modes.rls(retention as SystemDeclaration, work)]
    stack = String(error.stack)
    await use
  })
  const line = /:(\d+):\d+\)?$/m.exec(stack.split('\n')[1]!)![1]
  t.equal(events.length, 1)
  const [event] = events as [SystemContextEvent]
  t.ok(Object.isFrozen(event))
  t.same(Object.keys(event).sort(), [
    'caller',
    'code',
    'durationMs',
    'mode',
    'operations',
    'outcome',
    'reason',
    'rows',
    'statements',
    'tables',
  ])
  t.match(event, {
    reason: 'retention',
    tables: ['notes'],
    operations: ['read', 'delete'],
    mode: 'rls',
    outcome: 'ok',
    code: undefined,
    statements: [
      { table: 'notes', operation: 'read', rows: 2 },
      { table: 'notes', operation: 'delete', rows: 1 },
    ],
    rows: 3,
    caller: `${here}:${line}`,
  })
  t.ok(event.durationMs > 0 && event.durationMs < 10_000)
  t.same(lines, [
    { level: 'info', details: { keyhole: { system: event } }, message: 'keyhole: system context' },
  ])
  t.notMatch(JSON.stringify(lines), /note a|note b|group_id|[0-9a-f]{8}-[0-9a-f]{4}/, 'no value')

  const failures = await published(async () => {
    await modes.rls(readNotes, (db) => db.select('secrets'))
  })
  t.match(failures, [{ outcome: 'error', code: 'KH_SYSTEM_NOT_DECLARED', statements: [], rows: 0 }])
  const own = await published(async () => {
    await modes.rls(readNotes, async () => {
      throw new Error('a value: secret a')
    })
  })
  t.match(own, [{ outcome: 'error', code: undefined }], "the work's own error: no message")
  lines.length = 0
  const refusals = [
    ...(await published(() => runInRequest(() => modes.rls(readNotes, async () => {})))),
    ...(await published(() =>
      modes.rls({ reason: 'x', tables: ['secrets'], operations: ['read'] }, async () => {}),
    )),
  ]
  t.match(refusals, [
    { outcome: 'refused', code: 'KH_SYSTEM_IN_REQUEST', reason: 'count notes', statements: [] },
    { outcome: 'refused', code: 'KH_SYSTEM_NOT_DECLARED', tables: ['secrets'] },
  ])
  t.same(
    lines.map((l) => [l.level, l.message]),
    [
      ['warn', 'keyhole: system context refused'],
      ['warn', 'keyhole: system context refused'],
    ],
  )
  const quiet = await published(async () => {
    await modes.guard(readNotes, (db) => db.select('notes'))
  })
  t.match(quiet, [{ mode: 'guard', outcome: 'ok', rows: 1 }], 'published without a logger too')
})

t.test('callerLocation: the frame that called the entry, or undefined', async (t) => {
  const limit = Error.stackTraceLimit
  function entry() {
    return callerLocation(entry)
  }
  const [error, location] = [new Error(), entry()]
  t.equal(location, `${here}:${/:(\d+):\d+\)?$/m.exec(String(error.stack).split('\n')[1]!)![1]}`)
  t.equal(
    callerLocation(() => {}),
    undefined,
    'an entry not on the stack',
  )
  const fromNode = await new Promise<string | undefined>((resolve) =>
    setTimeout(function timer() {
      resolve(callerLocation(timer))
    }),
  )
  t.match(fromNode, /^node:internal\/timers:\d+$/, 'a frame of node itself: its path as is')
  t.equal(framePath(pathToFileURL(here).href), here, 'a file: URL (plain node, ES modules)')
  t.equal(framePath(here), here, 'a path (source maps)')
  t.equal(Error.stackTraceLimit, limit, 'the stack trace limit is restored')
})

t.test("createKeyhole's logger option: a pino-shaped logger", async (t) => {
  for (const logger of [{}, { info: () => {} }, 'console', null]) {
    t.throws(
      () =>
        createKeyhole({
          pool: runtimePool,
          policies: systemPolicies,
          signingKey: k.signingKey,
          logger: logger as never,
        }),
      {
        code: 'KH_INVALID_OPTIONS',
        message: /^Invalid option logger: must be a pino-shaped logger/,
      },
      JSON.stringify(logger),
    )
  }
})
