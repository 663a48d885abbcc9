/**
 * TLS to the database (issue 15): the runtime connection must be encrypted unless it stays on the
 * machine (a Unix socket, or loopback), KH_DB_NOT_ENCRYPTED otherwise; `checks.tls` asks for TLS
 * on loopback too ('always') or waives the check ('waived', logged at every start). The network
 * of the test machines reaches loopback only, so the rule is shown with 'always' on loopback
 * against a PostgreSQL served with TLS (a self-signed certificate made here with openssl), and the
 * address classification on its own.
 */
import t from 'tap'
import pg from 'pg'
import { checkDatabase } from '../../src/db/check-database.ts'
import { resolveCheckOptions, type CheckDatabaseOptions } from '../../src/db/checks/options.ts'
import { serverPlace } from '../../src/db/checks/tls.ts'
import type { ResolvedDatabase } from '../../src/http/adapter-options.ts'
import { startDatabaseHealth } from '../../src/http/database-health.ts'
import { startTlsPostgres, tlsUnavailable } from './helpers/tls-postgres.ts'

t.test('where the server is: a Unix socket, loopback, or the network', async (t) => {
  const cases: [string | null, 'socket' | 'loopback' | 'network'][] = [
    [null, 'socket'],
    ['127.0.0.1', 'loopback'],
    ['127.45.0.9', 'loopback'],
    ['127.0.0.1/32', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['10.0.0.5', 'network'],
    ['192.168.1.20', 'network'],
    ['128.0.0.1', 'network'],
    ['203.0.113.7', 'network'],
    ['2001:db8::1', 'network'],
    ['::ffff:203.0.113.7', 'network'],
    ['::', 'network'],
    ['not an address', 'network'],
  ]
  for (const [address, place] of cases) t.equal(serverPlace(address), place, String(address))
})

t.test('checks.tls is validated', async (t) => {
  for (const tls of ['required', 'off', true, '']) {
    t.throws(
      () => resolveCheckOptions({ guardedTables: [], tls } as unknown as CheckDatabaseOptions),
      { code: 'KH_INVALID_OPTIONS', message: /checkDatabase\.tls/ },
      String(tls),
    )
  }
  t.equal(resolveCheckOptions({ guardedTables: [] }).tls, 'remote', "the default is 'remote'")
})

const unavailable = tlsUnavailable()
t.test('against a PostgreSQL served with TLS', { skip: unavailable ?? false }, async (t) => {
  // One server for the file, stopped once every pool to it has ended.
  const server = await startTlsPostgres()
  const admin = new pg.Pool({ connectionString: server.url, max: 1 })
  const pools: pg.Pool[] = [admin]
  t.teardown(async () => {
    await Promise.all(pools.map((p) => p.end()))
    await server.stop()
  })
  // A plain runtime role on a database where nothing else is found.
  await admin.query(`CREATE ROLE app LOGIN PASSWORD 'app-password-1';
    REVOKE TEMP ON DATABASE postgres FROM PUBLIC`)
  const appUrl = new URL(server.url)
  appUrl.username = 'app'
  appUrl.password = 'app-password-1'
  function pool(ssl: pg.PoolConfig['ssl']) {
    // sslmode=require: encrypted, the test's self-signed certificate not verified. Production
    // verifies it (sslmode=verify-full with the server's CA).
    const p = new pg.Pool({ connectionString: appUrl.href, max: 1, ssl })
    pools.push(p)
    return p
  }
  const plain = pool(false)
  const encrypted = pool({ rejectUnauthorized: false })
  const base = { guardedTables: [], keyholeFunctions: [], signingKeyTable: false } as const
  const check = (p: pg.Pool, tls?: CheckDatabaseOptions['tls']) =>
    checkDatabase(p, tls === undefined ? base : { ...base, tls })

  t.test('the connections are what they say', async (t) => {
    const ssl = 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'
    t.same((await plain.query(ssl)).rows, [{ ssl: false }])
    t.same((await encrypted.query(ssl)).rows, [{ ssl: true }])
  })

  t.test("'always': an unencrypted connection is a finding, even on loopback", async (t) => {
    t.match(await check(plain, 'always'), [
      {
        code: 'KH_DB_NOT_ENCRYPTED',
        message: /127\.0\.0\.1 \(loopback\) is not encrypted/,
        fix: /sslmode=verify-full/,
      },
    ])
    t.same(await check(encrypted, 'always'), [], 'an encrypted one is not')
    const socket = new pg.Pool({
      host: server.socketDir,
      port: Number(appUrl.port),
      user: 'app',
      password: 'app-password-1',
      database: 'postgres',
      max: 1,
    })
    pools.push(socket)
    t.match(
      await check(socket, 'always'),
      [{ code: 'KH_DB_NOT_ENCRYPTED', message: /at a Unix socket is not encrypted/ }],
      'nor is a Unix socket (which has no TLS)',
    )
    t.same(await check(socket), [], 'which the default accepts')
  })

  t.test("the default ('remote'): loopback needs no TLS", async (t) => {
    t.same(await check(plain), [])
    t.same(await check(plain, 'remote'), [])
    t.same(await check(encrypted), [])
  })

  t.test("'waived': no finding, and every start says so at warn", async (t) => {
    t.same(await check(plain, 'waived'), [])
    const start = async (tls: CheckDatabaseOptions['tls']) => {
      const lines: { level: string; details: object; message: string }[] = []
      const at = (level: string) => (details: object, message: string) =>
        void lines.push({ level, details, message })
      await startDatabaseHealth({
        database: { pool: plain } as unknown as ResolvedDatabase,
        checks: resolveCheckOptions({ ...base, tls }),
        monitor: undefined,
        logger: { fatal: at('fatal'), warn: at('warn'), info: at('info') },
        close: () => {},
      })
      return lines
    }
    t.match(await start('waived'), [
      { level: 'warn', details: { waived: 'tls' }, message: /checks\.tls is 'waived'/ },
    ])
    t.same(await start('remote'), [], 'nothing is logged when nothing is waived')
    await t.rejects(start('always'), {
      code: 'KH_INSECURE_DATABASE',
      message: /KH_DB_NOT_ENCRYPTED/,
    })
  })
})
