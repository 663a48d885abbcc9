/**
 * `keyhole:finding` and the `onFinding` hook: each finding of the start-up checks (both adapters)
 * and of the monitor is published and handed to the hook, and so is each recovery; a hook that
 * throws or rejects is logged and changes nothing else (the monitor goes on, the start-up report
 * is the one thrown).
 */
import { once, EventEmitter } from 'node:events'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t, { type Test } from 'tap'
import { startMonitor, type MonitorLogger } from '../../src/db/monitor.ts'
import type { DatabaseFinding } from '../../src/errors.ts'
import { channelNames, type FindingEvent } from '../../src/events.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'
import * as fastifyApp from '../plugins/helpers/app.ts'
import * as expressApp from '../plugins/helpers/express-app.ts'

const k = await createKeyholeDatabase(t)
const pool = k.runtimePool(2)
const database = { pool, policies: notesPolicies, signingKey: k.signingKey }
const checks = { migrationRole: k.migrator.name }
const breakIt = () => k.db.pool.query(`GRANT TRUNCATE ON notes TO ${k.runtime.name}`)
const fixIt = () => k.db.pool.query(`REVOKE TRUNCATE ON notes FROM ${k.runtime.name}`)

/** Records the channel's events (and emits each) until the test ends. */
function channel(t: Test) {
  const events: FindingEvent[] = []
  const emitter = new EventEmitter()
  const listener = (event: unknown) => {
    events.push(event as FindingEvent)
    emitter.emit((event as FindingEvent).type, event)
  }
  subscribe(channelNames.finding, listener)
  t.teardown(() => void unsubscribe(channelNames.finding, listener))
  return { events, emitter }
}

/** The monitor's timer is unref()ed: keep the process alive while a test waits for a run. */
function keepAlive(t: Test) {
  const handle = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(handle))
}

const privilege = (source: 'startup' | 'monitor') => ({
  type: 'finding',
  source,
  finding: { code: 'KH_DB_TABLE_PRIVILEGE', message: /TRUNCATE/, fix: /REVOKE TRUNCATE/ },
})

t.test('start-up findings: published, handed to onFinding, then the refusal', async (t) => {
  await breakIt()
  t.teardown(fixIt)
  const starts: Record<string, (onFinding: (event: FindingEvent) => unknown) => Promise<unknown>> =
    {
      fastify: (onFinding: (event: FindingEvent) => unknown) =>
        fastifyApp.buildApp(t, { database, checks, monitor: false, onFinding }),
      express: (onFinding: (event: FindingEvent) => unknown) =>
        expressApp.startApp(t, { database, checks, monitor: false, onFinding }),
    }
  for (const [name, start] of Object.entries(starts)) {
    const { events } = channel(t)
    const hooked: FindingEvent[] = []
    await t.rejects(
      start((event) => {
        hooked.push(event)
        throw new Error('the pager is down')
      }),
      { code: 'KH_INSECURE_DATABASE', message: /KH_DB_TABLE_PRIVILEGE/ },
      `${name}: the start-up report, not the hook's error`,
    )
    t.match(events, [privilege('startup')], `${name}: published`)
    t.equal(events.length, 1)
    t.same(hooked, events, `${name}: the hook gets the same events`)
    t.ok(Object.isFrozen(events[0]), `${name}: frozen`)
  }
})

t.test(
  'monitor: finding and recovery, published and hooked; a failing hook is survived',
  async (t) => {
    keepAlive(t)
    const { events, emitter } = channel(t)
    const hooked: FindingEvent[] = []
    let calls = 0
    const { app, logLines } = await fastifyApp.buildApp(
      t,
      {
        database,
        checks,
        monitor: { intervalMs: 20 },
        onFinding: async (event) => {
          hooked.push(event)
          // The first call throws before its promise; the next ones reject.
          if (calls++ === 0) throw new Error('the pager is down')
          throw new Error('the pager answered 500')
        },
      },
      (app) => {
        app.get('/health', { config: { keyhole: { public: true } } }, async () => {
          app.keyhole.assertHealthy()
          return 'ok'
        })
      },
    )
    const health = async () => (await app.inject({ method: 'GET', url: '/health' })).statusCode
    t.equal(await health(), 200)

    const found = once(emitter, 'finding')
    await breakIt()
    await found
    t.equal(await health(), 503, 'the 503 as ever')
    t.match(events, [privilege('monitor')])

    const recovered = once(emitter, 'recovered')
    await fixIt()
    await recovered
    t.equal(await health(), 200, 'serving again: the failing hook stopped nothing')
    t.same(events.slice(1), [{ type: 'recovered', source: 'monitor' }])
    await new Promise((resolve) => setImmediate(resolve))
    t.same(hooked, events, 'the hook gets each event')
    const warned = logLines().filter((l) => l.msg === 'keyhole: the onFinding hook failed')
    t.equal(warned.length, 2, 'each failure logged')
    t.match(warned, [{ level: 40, err: { message: 'the pager is down' } }, { level: 40 }])
  },
)

t.test('startMonitor: publishes too; a callback that throws or rejects is logged', async (t) => {
  keepAlive(t)
  const { events, emitter } = channel(t)
  const lines: string[] = []
  const logger: MonitorLogger = {
    fatal: (_details, message) => void lines.push(message),
    info: () => {},
  }
  let current: DatabaseFinding[] = []
  const monitor = startMonitor({
    check: async () => current,
    intervalMs: 5,
    logger,
    onFinding: () => {
      throw new Error('thrown')
    },
    onRecovered: () => Promise.reject(new Error('rejected')),
  })
  t.teardown(() => monitor.stop())
  const found = once(emitter, 'finding')
  current = [{ code: 'KH_DB_X', message: 'x', fix: 'y' }]
  await found
  const recovered = once(emitter, 'recovered')
  current = []
  await recovered
  await new Promise((resolve) => setImmediate(resolve))
  t.same(events, [
    { type: 'finding', source: 'monitor', finding: { code: 'KH_DB_X', message: 'x', fix: 'y' } },
    { type: 'recovered', source: 'monitor' },
  ])
  t.ok(lines.includes('keyhole database monitor: the onFinding callback threw'))
  t.ok(lines.includes('keyhole database monitor: the onRecovered callback threw'))
  t.equal(monitor.healthy, true, 'the monitor went on')
})

t.test('the onFinding option: a function, and only with the database checks', async (t) => {
  const bad: [string, object, RegExp][] = [
    [
      'not a function',
      { database, checks, onFinding: 'page me' },
      /Invalid option onFinding: must be a function/,
    ],
    [
      'without checks',
      { database, checks: false, onFinding: () => {} },
      /Invalid option onFinding: needs the database checks/,
    ],
    [
      'without database',
      { onFinding: () => {} },
      /Invalid option onFinding: needs the database checks/,
    ],
  ]
  for (const [name, options, message] of bad) {
    await t.rejects(fastifyApp.buildApp(t, options), { code: 'KH_INVALID_OPTIONS', message }, name)
  }
})
