/**
 * The retention job (example-app/retention.ts) in keyhole's system context, and the forum's audit
 * lines (example-app/events-log.ts): one JSON line per refusal and per use of the system context.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { channelNames, type SystemContextEvent } from 'keyhole'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { createKeyhole } from 'keyhole'
import { policies } from '../../example-app/policies.ts'
import {
  RETENTION_REASON,
  deleteExpiredThreads,
  scheduleRetention,
} from '../../example-app/retention.ts'
import { assertError, startForum } from './helpers/forum.ts'

/** The forum's log, one parsed object per line (Fastify's pino logger writes JSON lines). */
const raw: string[] = []
const lines = () => raw.map((line) => JSON.parse(line) as Record<string, any>)
const forum = await startForum(t, {
  logger: { level: 'info', stream: { write: (line: string) => void raw.push(line) } },
  // The build() wiring: the hourly timer never fires during this file (the job is called directly).
  retentionDays: 365,
})
const { groupA, groupB } = forum

/** The keyhole:system events published while `work` runs. */
async function systemEvents(work: () => Promise<unknown>): Promise<SystemContextEvent[]> {
  const events: SystemContextEvent[] = []
  const listener = (message: unknown) => void events.push(message as SystemContextEvent)
  subscribe(channelNames.system, listener)
  try {
    await work()
  } finally {
    unsubscribe(channelNames.system, listener)
  }
  return events
}

async function ageThread(id: string, days: number): Promise<void> {
  await forum.db.pool.query(
    `UPDATE discussion_threads SET created_at = now() - make_interval(days => $2) WHERE id = $1`,
    [id, days],
  )
}

const threadIds = async () =>
  (await forum.db.pool.query<{ id: string }>('SELECT id FROM discussion_threads ORDER BY id')).rows
    .map((r) => r.id)
    .sort()

t.test('deletes the threads older than the period in every group, and only those', async (t) => {
  const oldA = await forum.seedThread(groupA, 'alice', 'old in A')
  const oldB = await forum.seedThread(groupB, 'carol', 'old in B')
  const newA = await forum.seedThread(groupA, 'alice', 'new in A')
  const newB = await forum.seedThread(groupB, 'carol', 'new in B')
  const edgeB = await forum.seedThread(groupB, 'carol', 'just inside the period')
  await ageThread(oldA, 400)
  await ageThread(oldB, 366)
  await ageThread(edgeB, 364)
  const oldPost = await forum.seedPost(oldA, 'bob')
  const newPost = await forum.seedPost(newA, 'bob')
  raw.length = 0

  let deleted = -1
  const events = await systemEvents(async () => {
    deleted = await deleteExpiredThreads(forum.app.jobs, 365)
  })
  t.equal(deleted, 2)
  t.same(await threadIds(), [newA, newB, edgeB].sort(), 'the newer threads of both groups remain')
  const posts = await forum.db.pool.query<{ id: string }>('SELECT id FROM posts')
  t.same(
    posts.rows.map((r) => r.id),
    [newPost],
    `the old thread's post went with it (${oldPost})`,
  )

  t.equal(events.length, 1, 'one use of the system context')
  t.match(events[0], {
    reason: RETENTION_REASON,
    tables: ['discussion_threads'],
    operations: ['read', 'delete'],
    mode: 'rls',
    outcome: 'ok',
    code: undefined,
    statements: [
      { table: 'discussion_threads', operation: 'read', rows: 2 },
      { table: 'discussion_threads', operation: 'delete', rows: 2 },
    ],
    rows: 4,
  })
  t.match(events[0]!.caller, /example-app\/retention\.ts:\d+$/, 'the caller is the job')

  const logged = lines().filter((l) => l.msg === 'keyhole: system context')
  t.equal(logged.length, 1, 'one JSON line')
  t.same(logged[0]!.keyhole, { system: JSON.parse(JSON.stringify(events[0])) }, 'the payload')
  t.equal(logged[0]!.level, 30, 'at info')

  const again = await systemEvents(async () => {
    t.equal(await deleteExpiredThreads(forum.app.jobs, 365), 0, 'a second run finds nothing')
  })
  t.match(again, [{ outcome: 'ok', statements: [{ operation: 'read', rows: 0 }], rows: 0 }])
})

t.test('the timer runs the job until stopped', async (t) => {
  const old = await forum.seedThread(groupA, 'alice', 'old again')
  await ageThread(old, 1000)
  const failed: unknown[] = []
  const events = await systemEvents(async () => {
    let run: (() => void) | undefined
    const ran = new Promise<void>((resolve) => (run = resolve))
    const listener = () => run?.()
    subscribe(channelNames.system, listener)
    // The table locked: the first run waits in its transaction while the next ticks are skipped.
    const locker = await forum.db.pool.connect()
    await locker.query('BEGIN; LOCK TABLE discussion_threads IN ACCESS EXCLUSIVE MODE')
    const stop = scheduleRetention(
      forum.app.jobs,
      { retentionDays: 365, intervalMs: 5 },
      { error: (fields) => void failed.push(fields) },
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    await locker.query('COMMIT')
    locker.release()
    await ran
    stop()
    unsubscribe(channelNames.system, listener)
    // A run the timer started just before stop() may still be in its transaction.
    await new Promise((resolve) => setTimeout(resolve, 50))
  })
  t.equal(events.length, 1, 'one run, however many ticks passed while it waited')
  t.match(events[0], {
    reason: RETENTION_REASON,
    outcome: 'ok',
    statements: [{ rows: 1 }, { operation: 'delete', rows: 1 }],
  })
  t.notOk((await threadIds()).includes(old))
  t.same(failed, [])
  t.same(
    scheduleRetention(forum.app.jobs, {}, { error: () => t.fail('ran') })(),
    undefined,
    'off: no timer',
  )
})

t.test('a failed run is logged with its code, and the next runs on', async (t) => {
  const pool = new pg.Pool({ connectionString: forum.db.url })
  await pool.end()
  const down = createKeyhole({
    pool,
    policies,
    signingKey: randomBytes(32).toString('base64url'),
    dataKeys: forum.dataKeys,
  })
  const failed: object[] = []
  let second: (() => void) | undefined
  const twice = new Promise<void>((resolve) => (second = resolve))
  const stop = scheduleRetention(
    down,
    { retentionDays: 365, intervalMs: 5 },
    {
      error: (fields, message) => {
        failed.push({ ...fields, message })
        if (failed.length === 2) second?.()
      },
    },
  )
  await twice
  stop()
  t.match(failed[0], { code: 'KH_UNAVAILABLE', error: String, message: 'retention job failed' })
})

t.test('a refusal is one JSON line with the decision, never the token', async (t) => {
  const id = await forum.seedThread(groupA, 'alice', 'refusals')
  const cases = [
    {
      name: 'requireRole: a member of another group lists group A',
      caller: 'carol',
      request: { method: 'GET', url: `/groups/${groupA}/threads` },
      status: 403,
      code: 'KH_FORBIDDEN',
      decision: { check: 'role', route: '/groups/:groupId/threads', method: 'GET' },
    },
    {
      name: 'a guarded statement: a stranger reads a thread of group A',
      caller: 'carol',
      request: { method: 'GET', url: `/threads/${id}` },
      status: 404,
      code: 'KH_NOT_FOUND',
      decision: { check: 'statement', route: '/threads/:threadId', method: 'GET' },
    },
    {
      name: 'a guarded statement: a member renames a thread she did not write',
      caller: 'bob',
      request: { method: 'PATCH', url: `/threads/${id}`, payload: { title: 'by bob' } },
      status: 403,
      code: 'KH_CAPABILITY_DENIED',
      decision: { check: 'statement', table: 'discussion_threads', operation: 'update' },
    },
  ] as const
  for (const c of cases) {
    raw.length = 0
    const response = await forum.request(c.caller, c.request)
    assertError(t, response, c.status, c.code, c.name)
    const refused = lines().filter((l) => l.msg === 'keyhole: refused')
    t.equal(refused.length, 1, `${c.name}: one line`)
    t.equal(refused[0]?.level, 40, `${c.name}: at warn`)
    t.match(
      refused[0]?.keyhole?.decision,
      {
        outcome: 'refused',
        statusCode: c.status,
        code: c.code,
        subject: c.caller,
        ...c.decision,
      },
      `${c.name}: the payload`,
    )
    t.notOk(
      raw.some((line) => line.includes(forum.tokens[c.caller])),
      `${c.name}: no token logged`,
    )
  }

  raw.length = 0
  const allowed = await forum.request('alice', { method: 'GET', url: `/threads/${id}` })
  t.equal(allowed.statusCode, 200)
  t.same(
    lines().filter((l) => String(l.msg).startsWith('keyhole:')),
    [],
    'an allowed request logs no decision',
  )
})
