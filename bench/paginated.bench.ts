/**
 * A paginated list, as a forum's thread list reads it: the threads of one group whose title
 * contains a search text, newest first, the page after a cursor (keyset on created_at, id), 20
 * rows — through `request.db`'s handle in 'guard' mode (`op` filter, `orderBy`, `after`, `limit`)
 * against the same hand-written SQL without any guard, on the same table and connection, runs
 * interleaved; with 1, 100 and 1 000 group IDs in the capability, on 10⁵ rows.
 *
 * Standalone: `node --import tsx bench/paginated.bench.ts [--quick]` (DATABASE_URL or an embedded
 * server).
 */
import pg from 'pg'
import { likeContains, op } from '../src/sql/filter.ts'
import { inGroup } from '../src/sql/guard.ts'
import { bindPolicies, definePolicies } from '../src/sql/policies.ts'
import { interleave, ratio } from './lib/interleave.ts'
import type { BenchContext, BenchRow, BenchSection, GoalResult } from './lib/types.ts'
import { benchCapability } from './sql.bench.ts'

const ROWS = 100_000
/** 100 rows per group. */
const GROUPS = ROWS / 100
const PAGE = 20

function group(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`
}
/** The group the list reads: the holder's last group (the worst place for a linear scan). */
const READ = group(1)

async function setUp(client: pg.Client): Promise<void> {
  await client.query(`
    DROP TABLE IF EXISTS bench_list;
    CREATE TABLE bench_list (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      group_id uuid NOT NULL,
      title text NOT NULL,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL);
    INSERT INTO bench_list (group_id, title, created_by, created_at)
      SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i % ${GROUPS}), 12, '0'))::uuid,
             CASE WHEN i % 3 = 0 THEN 'Seed thread ' ELSE 'other ' END || i, 'seed',
             timestamptz '2026-01-01' + i * interval '1 minute'
      FROM generate_series(0, ${ROWS - 1}) AS i;
    CREATE INDEX bench_list_group_id_idx ON bench_list (group_id);
    CREATE INDEX bench_list_page_idx ON bench_list (group_id, created_at DESC, id DESC)`)
  // Hint bits, the visibility map and the dirty pages, out of the measured rounds.
  await client.query('VACUUM (ANALYZE) bench_list')
  await client.query('CHECKPOINT')
}

export async function run(context: BenchContext): Promise<BenchSection> {
  const quick = context.quick
  const counts = quick ? [1, 1_000] : [1, 100, 1_000]
  const rounds = quick ? 5 : 8
  const perRound = quick ? 100 : 300
  const client = new pg.Client({ connectionString: context.databaseUrl })
  await client.connect()
  const rows: BenchRow[] = []
  const policies = definePolicies({ bench_list: { read: inGroup('group_id', 'member') } })
  try {
    context.log(`paginated: table of ${ROWS} rows, ${GROUPS} groups`)
    await setUp(client)
    // The cursor: the 10th row of the group's list, so that every page is full.
    const cursor = (
      await client.query(
        `SELECT created_at, id FROM bench_list WHERE group_id = $1 AND title ILIKE '%seed%'
         ORDER BY created_at DESC, id DESC OFFSET 9 LIMIT 1`,
        [READ],
      )
    ).rows[0] as { created_at: Date; id: string }
    for (const n of counts) {
      const groups = [...Array.from({ length: n - 1 }, (_, i) => group(i + 2)), READ]
      const cap = benchCapability(groups)
      const results = await interleave(
        [
          {
            name: 'hand-written SQL, no guard',
            op: () =>
              client.query({
                name: 'b_list',
                text:
                  'SELECT * FROM bench_list WHERE group_id = $1 AND title ILIKE $2 ' +
                  'AND (created_at, id) < ($3, $4) ORDER BY created_at DESC, id DESC LIMIT $5',
                values: [READ, likeContains('seed'), cursor.created_at, cursor.id, PAGE],
              }),
          },
          {
            name: "request.db.select ('guard' mode)",
            // A handle per operation, as per request; the filter built per call, as a route does.
            op: () =>
              bindPolicies(policies, client, cap).select(
                'bench_list',
                { group_id: READ, title: op({ ilike: likeContains('seed') }) },
                {
                  orderBy: [
                    ['created_at', 'desc'],
                    ['id', 'desc'],
                  ],
                  after: cursor,
                  limit: PAGE,
                },
              ),
          },
        ],
        { rounds, perRound },
      )
      const [plain, guarded] = results as [(typeof results)[0], (typeof results)[0]]
      rows.push({
        group: `Paginated list (keyset, ILIKE, ${PAGE} rows)`,
        name: guarded.name,
        groups: n,
        tableRows: ROWS,
        ops: guarded.ops,
        baseline: plain.name,
        baselineOps: plain.ops,
        ratio: ratio(guarded, plain),
      })
      context.log(`paginated: ${n} groups done`)
    }
    await client.query('DROP TABLE bench_list')
  } finally {
    await client.end()
  }
  const worst = rows.reduce((a, b) => ((a.ratio ?? 0) <= (b.ratio ?? 0) ? a : b))
  const goal: GoalResult = {
    goal: "Guarded paginated list ('guard' mode) ≥ 0.9× the same hand-written SQL without a guard (10⁵ rows)",
    measured: `${worst.ratio!.toFixed(2)}× worst (groups ${rows.map((r) => `${r.groups}: ${r.ratio!.toFixed(2)}×`).join(', ')})`,
    met: worst.ratio! >= 0.9,
  }
  return {
    title: 'Paginated list',
    rows,
    goals: [goal],
    notes: [
      `One connection, ${rounds} measured rounds × ${perRound} pages per side after a warm-up round, sides interleaved; ratio = median of the per-round throughput ratios.`,
      'Both sides are named prepared statements on a table with the group index and (group_id, created_at DESC, id DESC); the hand-written side has no guard at all, the guarded side adds $1 = ANY($n) (the listed group checked once against the holder’s groups, the array narrowed to it) and builds its filter and handle per page.',
    ],
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { startEmbeddedPostgres } = await import('../dev/embedded-postgres.ts')
  const server = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres()
  try {
    const section = await run({
      quick: process.argv.includes('--quick'),
      databaseUrl: process.env.DATABASE_URL ?? server!.url,
      log: (line) => console.error(line),
    })
    console.table(
      section.rows.map((r) => ({
        name: r.name,
        groups: r.groups,
        ops: r.ops?.toFixed(0),
        vs: r.baseline,
        baselineOps: r.baselineOps?.toFixed(0),
        ratio: r.ratio?.toFixed(2),
      })),
    )
    console.table(section.goals)
  } finally {
    await server?.stop()
  }
}
