/**
 * The Kysely layer in 'rls' mode: a forum thread list with each thread's post count and last post
 * (a join and an aggregate, no guard written: the forced policies condition it), built per
 * request by `kysely<DB>(request.db)` and run, against the same SQL text and values sent through
 * `request.db.query`. Both run as the runtime role on the same handle (`transaction: 'statement'`:
 * the signed capability and the statement in one round trip, the session reset after it), on a
 * pool of one connection, in turns. Goal: the layer within 10% (≥ 0.9×).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Generated } from 'kysely'
import { kysely } from '../plugins/kysely.ts'
import type { Capability } from '../src/capability/capability.ts'
import { policySql } from '../src/db/policy-sql.ts'
import { createSessionFactory } from '../src/db/session.ts'
import { setup } from '../src/db/setup.ts'
import { inGroup, viaParent } from '../src/sql/guard.ts'
import { bindPolicies, definePolicies } from '../src/sql/policies.ts'
import { interleave, ratio } from './lib/interleave.ts'
import type { BenchContext, BenchSection } from './lib/types.ts'

interface DB {
  bench_threads: { id: Generated<string>; group_id: string; title: string; created_at: Date }
  bench_posts: { id: Generated<string>; thread_id: string; created_at: Date }
}

const policies = definePolicies({
  bench_threads: { read: inGroup('group_id', 'member') },
  bench_posts: {
    read: viaParent(
      { table: 'bench_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' },
      'member',
    ),
  },
})

function capabilityOf(group: string): Capability {
  const binding = Object.freeze({ groups: Object.freeze([group]), isAdmin: false })
  return Object.freeze({
    subject: 'bench',
    isAdmin: false,
    roles: Object.freeze(['member', 'moderator', 'admin']),
    groupIdType: 'uuid',
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    groups: () => binding.groups,
    has: () => true,
    binding: () => binding,
    scopes: Object.freeze([]),
    hasScope: () => false,
  })
}

export async function run(context: BenchContext): Promise<BenchSection> {
  const suffix = randomBytes(4).toString('hex')
  const migrator = {
    name: `bench_kysely_m_${suffix}`,
    password: randomBytes(18).toString('base64url'),
  }
  const runtime = {
    name: `bench_kysely_r_${suffix}`,
    password: randomBytes(18).toString('base64url'),
  }
  // Its own database: another part's setup made keyhole's schema in the shared one, owned by
  // that part's migration role, which this part's migration role may not read.
  const database = `bench_kysely_${suffix}`
  const root = new pg.Client({ connectionString: context.databaseUrl })
  await root.connect()
  await root.query(`CREATE DATABASE ${database}`)
  const databaseUrl = new URL(context.databaseUrl)
  databaseUrl.pathname = `/${database}`
  const { signingKey } = await setup(databaseUrl.toString(), {
    migrationRole: migrator,
    runtimeRole: runtime,
  })
  const as = (role: { name: string; password: string }) => {
    const url = new URL(databaseUrl)
    url.username = role.name
    url.password = role.password
    return url.toString()
  }
  const group = randomUUID()
  const other = randomUUID()
  const m = new pg.Client({ connectionString: as(migrator) })
  await m.connect()
  await m.query(`
    CREATE TABLE bench_threads (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), group_id uuid NOT NULL,
      title text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON bench_threads (group_id, created_at);
    CREATE TABLE bench_posts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      thread_id uuid NOT NULL REFERENCES bench_threads (id), created_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON bench_posts (thread_id);
    INSERT INTO bench_threads (group_id, title, created_at)
      SELECT CASE WHEN i % 2 = 0 THEN '${group}'::uuid ELSE '${other}'::uuid END, 'thread ' || i,
        now() - i * interval '1 minute' FROM generate_series(1, 200) i;
    INSERT INTO bench_posts (thread_id, created_at)
      SELECT t.id, now() - p * interval '1 second' FROM bench_threads t, generate_series(1, 5) p;
    ANALYZE bench_threads; ANALYZE bench_posts;
    ${policySql(policies, { runtimeRole: runtime.name })}`)
  await m.end()

  const pool = new pg.Pool({ connectionString: as(runtime), max: 1 })
  pool.on('error', () => {})
  try {
    const sessions = createSessionFactory({ pool, signingKey })
    const capability = capabilityOf(group)
    const handle = bindPolicies(policies, sessions.autocommit(capability), capability, {
      mode: 'rls',
      transaction: 'statement',
    })
    const list = (db: ReturnType<typeof kysely<DB>>) =>
      db
        .selectFrom('bench_threads as t')
        .leftJoin('bench_posts as p', 'p.thread_id', 't.id')
        .select((eb) => [
          't.id',
          't.title',
          eb.fn.count<string>('p.id').as('postCount'),
          eb.fn.max('p.created_at').as('lastPostAt'),
        ])
        .where('t.group_id', '=', group)
        .groupBy('t.id')
        .orderBy('t.created_at', 'desc')
        .limit(50)
    const compiled = list(kysely<DB>(handle)).compile()
    const sqlText = compiled.sql
    const values = [...compiled.parameters]
    // Named, as keyhole/kysely names the statements it runs: the same parse and plan per connection.
    const statement = { name: 'bench_kysely_list', text: sqlText, values }
    const rows = (await handle.query(statement)).rows.length
    const sides = [
      {
        name: 'kysely',
        op: () => list(kysely<DB>(handle)).execute(),
      },
      { name: 'query', op: () => handle.query(statement) },
    ]
    const rounds = context.quick ? 6 : 12
    context.log(`kysely: ${rounds} rounds of 200 thread lists (${rows} rows each)`)
    const [viaKysely, viaQuery] = await interleave(sides, { rounds, perRound: 200 })
    const r = ratio(viaKysely!, viaQuery!)
    return {
      title: 'Kysely layer (rls mode)',
      rows: [
        {
          group: `thread list: join + count + max, ${rows} of 100 visible threads`,
          name: 'kysely<DB>(request.db), created per request, built and executed',
          ops: viaKysely!.ops,
          baseline: 'the same SQL and values through request.db.query (a named statement)',
          baselineOps: viaQuery!.ops,
          ratio: r,
        },
      ],
      goals: [
        {
          goal: 'Kysely layer within 10% of request.db.query (≥ 0.90×)',
          measured: `${r.toFixed(3)}×`,
          met: r >= 0.9,
        },
      ],
    }
  } finally {
    await pool.end()
    await root.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    // DROP OWNED first: setup grants the migration role SET on a parameter (sql/000003).
    const { rows } = await root.query('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [
      [migrator.name, runtime.name],
    ])
    for (const { rolname } of rows) await root.query(`DROP OWNED BY "${rolname}"`)
    await root.query(`DROP ROLE IF EXISTS ${migrator.name}, ${runtime.name}`)
    await root.end()
  }
}
