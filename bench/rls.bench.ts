/**
 * RLS mode vs guard-only on single-row inserts, runs interleaved (A B A B…):
 *   - guard-only: the guarded INSERT alone, on a table without RLS, one round trip;
 *   - RLS mode: the same guarded INSERT on a table with RLS forced and keyhole's policies, as the
 *     runtime role, with the signed capability set by `runOne` (set_capability + the statement
 *     before one Sync: one round trip).
 * And the same two sides for a 50-row list (issue 20): the guarded SELECT of one group's 50 rows, on
 * a table of 1 000 rows in 20 groups (an index on the group column), without RLS and with it.
 * Both through a pg Pool of the runtime role (max 1), so checkout costs the same. Prints the
 * RLS/guard-only throughput ratios (targets ≥ 0.70× and, issue 20, ≥ 0.85×).
 *
 *   node --import tsx bench/rls.bench.ts          (DATABASE_URL of a superuser, or an embedded PostgreSQL)
 */
import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/embedded-postgres.ts'
import type { Capability } from '../src/capability/capability.ts'
import { kGenerated } from '../src/sql/generated-statement.ts'
import { createSessionFactory } from '../src/db/session.ts'
import { setup } from '../src/db/setup.ts'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8)
const PER_ROUND = Number(process.env.BENCH_OPS ?? 400)

let server: RunningPostgres | undefined
let url = process.env.DATABASE_URL
if (!url) {
  server = await startEmbeddedPostgres()
  url = server.url
}
const database = `kh_bench_${randomBytes(4).toString('hex')}`
const root = new pg.Client({ connectionString: url })
await root.connect()
await root.query(`CREATE DATABASE ${database}`)
const dbUrl = new URL(url)
dbUrl.pathname = `/${database}`
const as = (role: { name: string; password: string }) => {
  const u = new URL(dbUrl)
  u.username = role.name
  u.password = role.password
  return u.toString()
}
const migrator = { name: `${database}_migrator`, password: randomBytes(18).toString('base64url') }
const runtime = { name: `${database}_runtime`, password: randomBytes(18).toString('base64url') }
const pools: pg.Pool[] = []
try {
  const { signingKey } = await setup(dbUrl.toString(), {
    migrationRole: migrator,
    runtimeRole: runtime,
  })
  const m = new pg.Client({ connectionString: as(migrator) })
  await m.connect()
  const guard = `(group_id = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin()))`
  await m.query(`
    CREATE TABLE plain_posts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), group_id uuid NOT NULL, body text NOT NULL);
    CREATE TABLE rls_posts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), group_id uuid NOT NULL, body text NOT NULL);
    ALTER TABLE rls_posts ENABLE ROW LEVEL SECURITY;
    ALTER TABLE rls_posts FORCE ROW LEVEL SECURITY;
    CREATE POLICY keyhole_select ON rls_posts FOR SELECT TO "${runtime.name}" USING ${guard};
    CREATE POLICY keyhole_insert ON rls_posts FOR INSERT TO "${runtime.name}" WITH CHECK ${guard};
    CREATE TABLE plain_list (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), group_id uuid NOT NULL, body text NOT NULL);
    CREATE TABLE rls_list (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), group_id uuid NOT NULL, body text NOT NULL);
    CREATE INDEX ON plain_list (group_id, id);
    CREATE INDEX ON rls_list (group_id, id);`)

  const group = randomUUID()
  // 20 groups of 50 rows each; the holder's group is the first.
  for (const table of ['plain_list', 'rls_list']) {
    await m.query(
      `INSERT INTO ${table} (group_id, body)
       SELECT CASE WHEN g = 0 THEN $1::uuid ELSE gen_random_uuid() END, 'row ' || r
       FROM generate_series(0, 19) AS g, generate_series(1, 50) AS r`,
      [group],
    )
    await m.query(`ANALYZE ${table}`)
  }
  // Forced row-level security applies to the owner too: seeded first, then forced.
  await m.query(`
    ALTER TABLE rls_list ENABLE ROW LEVEL SECURITY;
    ALTER TABLE rls_list FORCE ROW LEVEL SECURITY;
    CREATE POLICY keyhole_select ON rls_list FOR SELECT TO "${runtime.name}" USING ${guard};`)
  await m.end()

  const binding = Object.freeze({ groups: Object.freeze([group]), isAdmin: false })
  const capability: Capability = Object.freeze({
    subject: 'bench',
    isAdmin: false,
    roles: Object.freeze(['member', 'moderator', 'admin']),
    groupIdType: 'uuid',
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    scopes: [],
    hasScope: () => false,
    groups: () => binding.groups,
    has: () => true,
    binding: () => binding,
  })
  // Marked as keyhole's own, as guardedInsert marks it: no session reset after it.
  const guarded = (table: string) => ({
    name: `bench_insert_${table}`,
    text: `INSERT INTO ${table} (group_id, body) SELECT $1, $2 WHERE $1 = ANY ($3::uuid[]) OR $4`,
    [kGenerated]: true,
  })
  const applicationSql = {
    name: 'bench_insert_app',
    text: `INSERT INTO rls_posts (group_id, body) VALUES ($1, $2)`,
  }
  const values = () => [group, 'hello', binding.groups, false]
  // The guarded list, as guardedSelect writes it for a group-column guard.
  const list = (table: string) => ({
    name: `bench_list_${table}`,
    text: `SELECT * FROM ${table} WHERE group_id = $1 AND (group_id = ANY ($2::uuid[]) OR $3) ORDER BY id LIMIT 50`,
    [kGenerated]: true,
  })
  const listValues = () => [group, binding.groups, false]

  const plainPool = new pg.Pool({ connectionString: as(runtime), max: 1 })
  const rlsPool = new pg.Pool({ connectionString: as(runtime), max: 1 })
  pools.push(plainPool, rlsPool)
  const sessions = createSessionFactory({ pool: rlsPool, signingKey })
  const guardOnly = () => plainPool.query({ ...guarded('plain_posts'), values: values() })
  const rlsMode = () => sessions.runOne(capability, { ...guarded('rls_posts'), values: values() })
  // The application's own SQL: the request ends with keyhole.reset_session().
  const rlsApp = () => sessions.runOne(capability, { ...applicationSql, values: [group, 'hello'] })
  const listGuardOnly = () => plainPool.query({ ...list('plain_list'), values: listValues() })
  const listRls = () => sessions.runOne(capability, { ...list('rls_list'), values: listValues() })

  async function time(op: () => Promise<unknown>): Promise<number> {
    const start = process.hrtime.bigint()
    for (let i = 0; i < PER_ROUND; i++) await op()
    return Number(process.hrtime.bigint() - start) / 1e6
  }
  // Warm up both (connections, prepared statements, caches).
  await time(guardOnly)
  await time(rlsMode)
  await time(rlsApp)
  await time(listGuardOnly)
  await time(listRls)
  const totals = { guard: 0, rls: 0, app: 0, listGuard: 0, listRls: 0 }
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts with a different side, so neither always follows the other.
    const sides: [keyof typeof totals, () => Promise<unknown>][] = [
      ['guard', guardOnly],
      ['rls', rlsMode],
      ['app', rlsApp],
      ['listGuard', listGuardOnly],
      ['listRls', listRls],
    ]
    for (let i = 0; i < sides.length; i++) {
      const [side, op] = sides[(round + i) % sides.length]!
      totals[side] += await time(op)
    }
  }
  const ops = ROUNDS * PER_ROUND
  const rate = (ms: number) => Math.round((ops / ms) * 1000)
  const check = await plainPool.query('SELECT count(*)::int AS n FROM plain_posts')
  console.log(`single-row insert, ${ROUNDS} interleaved rounds × ${PER_ROUND}`)
  console.log(`  guard-only : ${rate(totals.guard)} ops/s`)
  console.log(
    `  RLS mode   : ${rate(totals.rls)} ops/s (signed capability + policy, one round trip)`,
  )
  console.log(
    `  RLS mode, application SQL : ${rate(totals.app)} ops/s (plus keyhole.reset_session(), same round trip)`,
  )
  console.log(
    `  ratio RLS/guard-only: ${(totals.guard / totals.rls).toFixed(2)}× (targets ≥ 0.70×, ≥ 0.85×)`,
  )
  console.log(`50-row list, ${ROUNDS} interleaved rounds × ${PER_ROUND}`)
  console.log(`  list guard-only : ${rate(totals.listGuard)} ops/s`)
  console.log(`  list RLS mode   : ${rate(totals.listRls)} ops/s`)
  if (check.rows[0].n !== ops + PER_ROUND)
    throw new Error('the guard-only inserts did not all land')
  const [plainRows, rlsRows] = [(await listGuardOnly()).rows, (await listRls()).rows]
  if (plainRows.length !== 50 || rlsRows.length !== 50)
    throw new Error(`the lists returned ${plainRows.length} and ${rlsRows.length} rows, not 50`)
} finally {
  for (const p of pools) await p.end()
  await root.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  // DROP OWNED first: setup grants the migration role SET on a parameter (sql/000003).
  const { rows } = await root.query('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [
    [migrator.name, runtime.name],
  ])
  for (const { rolname } of rows) await root.query(`DROP OWNED BY "${rolname}"`)
  await root.query(`DROP ROLE IF EXISTS "${migrator.name}", "${runtime.name}"`)
  await root.end()
  await server?.stop()
}
