import t from 'tap'
import pg from 'pg'
import { once, EventEmitter } from 'node:events'
import type { DatabaseFinding } from '../../src/errors.ts'
import { checkDatabase } from '../../src/db/check-database.ts'
import { startMonitor, type MonitorLogger } from '../../src/db/monitor.ts'
import { createTestDatabase } from '../helpers/database.ts'
import { createBaseline } from '../helpers/roles.ts'

/**
 * The monitor's timer is unref()ed, so while a test awaits a tick nothing else would keep the
 * process alive (in an application, the server does).
 */
function keepAlive(t: { teardown(fn: () => void): void }) {
  const handle = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(handle))
}

const finding = (code: string): DatabaseFinding => ({
  code,
  message: `${code} found`,
  fix: 'fix it',
})

/** A logger that records its lines and emits an event per line. */
function recorder() {
  const events = new EventEmitter()
  const lines: { level: string; details: object; message: string }[] = []
  const logger: MonitorLogger = {
    fatal: (details, message) => {
      lines.push({ level: 'fatal', details, message })
      events.emit('fatal')
    },
    info: (details, message) => {
      lines.push({ level: 'info', details, message })
      events.emit('info')
    },
  }
  return { logger, lines, events }
}

t.test('on the real database: a finding after start is detected, then the recovery', async (t) => {
  const db = await createTestDatabase(t)
  const base = await createBaseline(db)
  const pool = new pg.Pool({ connectionString: base.runtimeUrl, max: 1 })
  t.teardown(() => pool.end())
  const events = new EventEmitter()
  const { logger, lines } = recorder()
  const monitor = startMonitor({
    check: () => checkDatabase(pool, base.options),
    intervalMs: 5,
    onFinding: (findings) => events.emit('finding', findings),
    onRecovered: () => events.emit('recovered'),
    logger,
  })
  t.teardown(() => monitor.stop())
  t.equal(monitor.healthy, true, 'starts healthy')

  const found = once(events, 'finding')
  await base.sql(`GRANT TRUNCATE ON app.posts TO "${base.runtime.name}"`)
  const [findings] = (await found) as [DatabaseFinding[]]
  t.same(
    findings.map((f) => f.code),
    ['KH_DB_TABLE_PRIVILEGE'],
  )
  t.equal(monitor.healthy, false)
  t.same(monitor.findings, findings)
  const fatal = lines.find((l) => l.level === 'fatal')
  t.match(fatal?.message, /KH_DB_TABLE_PRIVILEGE/, 'logged at fatal with the code')
  t.match(fatal?.message, /fix: REVOKE TRUNCATE/, 'and the fix')
  t.notMatch(fatal?.message, base.runtime.password, 'never a password')

  const recovered = once(events, 'recovered')
  await base.sql(`REVOKE TRUNCATE ON app.posts FROM "${base.runtime.name}"`)
  await recovered
  t.equal(monitor.healthy, true)
  t.same(monitor.findings, [])
  t.ok(
    lines.some((l) => l.level === 'info'),
    'the recovery is logged at info',
  )
})

t.test('runs never overlap, on the interval or when asked', async (t) => {
  keepAlive(t)
  let active = 0
  let most = 0
  let calls = 0
  const ticks = new EventEmitter()
  const monitor = startMonitor({
    check: async () => {
      active++
      calls++
      most = Math.max(most, active)
      await new Promise((resolve) => setImmediate(resolve))
      active--
      ticks.emit('tick', calls)
      return []
    },
    intervalMs: 1,
    logger: recorder().logger,
  })
  const a = monitor.check()
  const b = monitor.check()
  t.equal(a, b, 'a second call joins the run in progress')
  await a
  while (calls < 5) await once(ticks, 'tick')
  await monitor.stop()
  t.equal(most, 1, 'never two runs at once')
})

t.test('a check that throws is a finding (fail closed), without secrets', async (t) => {
  const { logger } = recorder()
  const events = new EventEmitter()
  let fail = true
  const monitor = startMonitor({
    check: async () => {
      if (fail) throw new Error('connect ECONNREFUSED postgres://app:s3cret@db:5432/app')
      return []
    },
    intervalMs: false,
    onFinding: (f) => events.emit('finding', f),
    onRecovered: () => events.emit('recovered'),
    logger,
  })
  const findings = await monitor.check()
  t.same(
    findings.map((f) => f.code),
    ['KH_DB_CHECK_FAILED'],
  )
  t.equal(monitor.healthy, false)
  t.notMatch(findings[0]?.message, 's3cret')
  t.match(findings[0]?.message, 'postgres://app:***@db')
  const thrown = startMonitor({
    check: () => Promise.reject('not an Error'),
    intervalMs: 0,
    logger,
  })
  t.match((await thrown.check())[0], { code: 'KH_DB_CHECK_FAILED', message: /not an Error/ })
  fail = false
  const recovered = once(events, 'recovered')
  await monitor.check()
  await recovered
  t.equal(monitor.healthy, true)
})

t.test('a synchronous throw is a finding too, and the next run still runs', async (t) => {
  let n = 0
  const monitor = startMonitor({
    check: () => {
      n++
      if (n === 1) throw new Error('boom')
      return Promise.resolve([])
    },
    intervalMs: false,
    logger: recorder().logger,
  })
  t.match(await monitor.check(), [{ code: 'KH_DB_CHECK_FAILED' }])
  t.same(await monitor.check(), [], 'a fresh run, not the stale result')
  t.equal(n, 2)
})

t.test('onFinding fires when the findings change, fatal on every unhealthy run', async (t) => {
  const { logger, lines } = recorder()
  const calls: string[][] = []
  let next: DatabaseFinding[] = [finding('KH_DB_RLS_DISABLED')]
  const monitor = startMonitor({
    check: async () => next,
    intervalMs: false,
    onFinding: (f) => calls.push(f.map((x) => x.code)),
    logger,
  })
  await monitor.check()
  await monitor.check()
  next = [finding('KH_DB_RLS_DISABLED'), finding('KH_DB_LEAKPROOF')]
  await monitor.check()
  t.same(calls, [['KH_DB_RLS_DISABLED'], ['KH_DB_RLS_DISABLED', 'KH_DB_LEAKPROOF']])
  t.equal(lines.filter((l) => l.level === 'fatal').length, 3)
  t.ok(Object.isFrozen(monitor.findings))
  next = []
  await monitor.check()
  t.equal(monitor.healthy, true, 'recovers without an onRecovered callback')
})

t.test('a callback that throws is logged and the monitor goes on', async (t) => {
  const { logger, lines } = recorder()
  let next = [finding('KH_DB_LEAKPROOF')]
  const monitor = startMonitor({
    check: async () => next,
    intervalMs: false,
    onFinding: () => {
      throw new Error('finding callback')
    },
    onRecovered: () => {
      throw new Error('recovered callback')
    },
    logger,
  })
  await monitor.check()
  next = []
  await monitor.check()
  t.same(
    lines.filter((l) => /callback threw/.test(l.message)).map((l) => l.message),
    [
      'keyhole database monitor: the onFinding callback threw',
      'keyhole database monitor: the onRecovered callback threw',
    ],
  )
  t.equal(monitor.healthy, true)
})

t.test('stop: waits for the run in progress, then nothing more happens', async (t) => {
  keepAlive(t)
  let release = () => {}
  let calls = 0
  const started = new EventEmitter()
  const fired: string[] = []
  const monitor = startMonitor({
    check: () => {
      calls++
      started.emit('start')
      return new Promise((resolve) => {
        release = () => resolve([finding('KH_DB_LEAKPROOF')])
      })
    },
    intervalMs: 1,
    onFinding: () => fired.push('finding'),
    logger: recorder().logger,
  })
  await once(started, 'start')
  const stopping = monitor.stop()
  release()
  await stopping
  t.same(fired, [], 'no callback after stop')
  t.equal(monitor.healthy, true, 'state is not updated after stop')
  // A negative: give a stopped 1 ms interval room to misfire before counting.
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(calls, 1, 'no run after stop')
  await monitor.stop()
  t.pass('stop twice is fine')
})

t.test('intervalMs 0 or false: no timer; default 60 s; bad values refused', async (t) => {
  for (const intervalMs of [0, false] as const) {
    let calls = 0
    const monitor = startMonitor({ check: async () => (calls++, []), intervalMs })
    await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal(calls, 0, `${intervalMs}: nothing runs by itself`)
    await monitor.check()
    t.equal(calls, 1, `${intervalMs}: check() still runs`)
    await monitor.stop()
  }
  const idle = startMonitor({ check: async () => [] })
  t.equal(idle.healthy, true, 'default interval: the unref()ed timer does not hold the process')
  await idle.stop()
  for (const intervalMs of [-1, 1.5, Number.NaN, Infinity, '10' as never, true as never]) {
    t.throws(
      () => startMonitor({ check: async () => [], intervalMs }),
      { code: 'KH_INVALID_OPTIONS', message: /monitor\.intervalMs/ },
      `refuses ${String(intervalMs)}`,
    )
  }
})

t.test('without a logger, findings go to the console', async (t) => {
  const errors = t.capture(console, 'error')
  const infos = t.capture(console, 'info')
  let next = [finding('KH_DB_SUPERUSER')]
  const monitor = startMonitor({ check: async () => next, intervalMs: false })
  await monitor.check()
  next = []
  await monitor.check()
  t.match(errors()[0]?.args[0], /KH_DB_SUPERUSER/)
  t.match(infos()[0]?.args[0], /pass again/)
})
