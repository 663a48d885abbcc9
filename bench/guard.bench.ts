/**
 * Guarded INSERT vs plain INSERT … VALUES on the same table and connection, runs interleaved
 * (A B A B…), with 1 to 10 000 group IDs in the capability. Prints guarded/plain throughput ratios.
 *
 *   node --import tsx bench/guard.bench.ts          (DATABASE_URL, or an embedded PostgreSQL)
 */
import pg from 'pg'
import { randomUUID } from 'node:crypto'
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/embedded-postgres.ts'
import { inGroup, viaParent } from '../src/sql/guard.ts'
import { guardedInsert } from '../src/sql/guarded-insert.ts'
import type { Capability } from '../src/capability/capability.ts'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)
const PER_ROUND = Number(process.env.BENCH_OPS ?? 300)

function capability(groups: readonly string[]): Capability {
  const binding = Object.freeze({ groups: Object.freeze([...groups]), isAdmin: false })
  return Object.freeze({
    subject: 'bench',
    isAdmin: false,
    roles: ['member', 'moderator', 'admin'],
    groupIdType: 'uuid',
    expiresAt: undefined,
    scopes: [],
    hasScope: () => false,
    groups: () => binding.groups,
    has: () => true,
    binding: () => binding,
  })
}

let server: RunningPostgres | undefined
let url = process.env.DATABASE_URL
if (!url) {
  server = await startEmbeddedPostgres()
  url = server.url
}
const client = new pg.Client({ connectionString: url })
await client.connect()
try {
  await client.query(`
    DROP TABLE IF EXISTS bench_posts, bench_threads;
    CREATE TABLE bench_threads (id uuid PRIMARY KEY, group_id uuid NOT NULL, title text NOT NULL);
    CREATE INDEX ON bench_threads (group_id);
    CREATE TABLE bench_posts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      thread_id uuid NOT NULL REFERENCES bench_threads (id), content text NOT NULL);
    CREATE INDEX ON bench_posts (thread_id);
  `)
  const group = randomUUID()
  const thread = randomUUID()
  await client.query('INSERT INTO bench_threads VALUES ($1, $2, $3)', [thread, group, 'seed'])
  const groupGuard = inGroup('group_id', 'member')
  const parentGuard = viaParent(
    { table: 'bench_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' },
    'member',
  )

  type Op = () => Promise<unknown>
  async function time(op: Op): Promise<number> {
    const start = process.hrtime.bigint()
    for (let i = 0; i < PER_ROUND; i++) await op()
    return Number(process.hrtime.bigint() - start) / 1e6
  }
  /** Interleaved A B A B; returns ops/s of each (after one warm-up round of each). */
  async function compare(a: Op, b: Op): Promise<[number, number]> {
    await time(a)
    await time(b)
    let ta = 0
    let tb = 0
    for (let r = 0; r < ROUNDS; r++) {
      ta += await time(a)
      tb += await time(b)
    }
    const ops = ROUNDS * PER_ROUND
    return [(ops / ta) * 1000, (ops / tb) * 1000]
  }

  const rows: string[] = []
  rows.push('| groups | guard | plain ops/s | guarded ops/s | guarded/plain |')
  rows.push('|---:|---|---:|---:|---:|')
  for (const n of [1, 10, 100, 1000, 10000]) {
    const groups = [group, ...Array.from({ length: n - 1 }, () => randomUUID())].reverse()
    const cap = capability(groups)
    const plainThread: Op = () =>
      client.query({
        name: 'bench_plain_thread',
        text: 'INSERT INTO bench_threads (id, group_id, title) VALUES ($1, $2, $3) RETURNING *',
        values: [randomUUID(), group, 'hello'],
      })
    const guardedThread: Op = () =>
      guardedInsert(client, cap, {
        into: 'bench_threads',
        values: { id: randomUUID(), group_id: group, title: 'hello' },
        guard: groupGuard,
        chosenKeys: ['id'], // generated here, not by a client
      })
    const plainPost: Op = () =>
      client.query({
        name: 'bench_plain_post',
        text: 'INSERT INTO bench_posts (thread_id, content) VALUES ($1, $2) RETURNING *',
        values: [thread, 'hello'],
      })
    const guardedPost: Op = () =>
      guardedInsert(client, cap, {
        into: 'bench_posts',
        values: { thread_id: thread, content: 'hello' },
        guard: parentGuard,
      })
    const [p1, g1] = await compare(plainThread, guardedThread)
    rows.push(
      `| ${n} | group column | ${p1.toFixed(0)} | ${g1.toFixed(0)} | ${(g1 / p1).toFixed(2)} |`,
    )
    const [p2, g2] = await compare(plainPost, guardedPost)
    rows.push(
      `| ${n} | parent (viaParent) | ${p2.toFixed(0)} | ${g2.toFixed(0)} | ${(g2 / p2).toFixed(2)} |`,
    )
    if (n === 100) {
      const unprepared: Op = () =>
        guardedInsert(client, cap, {
          into: 'bench_threads',
          values: { id: randomUUID(), group_id: group, title: 'hello' },
          guard: groupGuard,
          chosenKeys: ['id'],
          prepared: false,
        })
      const [u, p] = await compare(unprepared, guardedThread)
      rows.push(
        `| ${n} | group column, unnamed vs named prepared | ${u.toFixed(0)} | ${p.toFixed(0)} | ${(p / u).toFixed(2)} |`,
      )
    }
  }
  console.log(
    `PostgreSQL ${(await client.query('SHOW server_version')).rows[0].server_version}, ${ROUNDS}×${PER_ROUND} ops per side, one connection, RETURNING * on both sides`,
  )
  console.log(rows.join('\n'))
  await client.query('DROP TABLE bench_posts, bench_threads')
} finally {
  await client.end()
  await server?.stop()
}
