/**
 * SQL guard cost: a plain statement against keyhole's guarded one, the parent-row guard and the
 * approach PostgREST and Supabase take (the JWT's claims as JSON in the transaction-local setting
 * `request.jwt.claims`, parsed inside an RLS policy), on the same table and connection, runs
 * interleaved; with 1 … 10 000 group IDs in the capability and the table at 10³, 10⁵ (and 10⁶)
 * rows, with the indexes the docs recommend (the group column, every foreign key).
 *
 * Standalone: `node --import tsx bench/sql.bench.ts [--quick]` (DATABASE_URL or an embedded server).
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Capability } from '../src/capability/capability.ts'
import { inGroup, viaParent } from '../src/sql/guard.ts'
import { guardedDelete } from '../src/sql/guarded-delete.ts'
import { guardedInsert } from '../src/sql/guarded-insert.ts'
import { guardedSelect } from '../src/sql/guarded-select.ts'
import { interleave, ratio, type Side, type SideResult } from './lib/interleave.ts'
import type { BenchContext, BenchRow, BenchSection, GoalResult, ScalingPoint } from './lib/types.ts'

const PGRST_ROLE = 'keyhole_bench_pgrst'

/** The i-th group that owns rows in the table (deterministic, so SQL can generate it too). */
function tableGroup(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`
}

/** A frozen capability holding `groups` as a member (the shape derivation produces). */
export function benchCapability(groups: readonly string[]): Capability {
  const binding = Object.freeze({ groups: Object.freeze([...groups]), isAdmin: false })
  return Object.freeze({
    subject: 'bench',
    isAdmin: false,
    roles: Object.freeze(['member', 'moderator', 'admin']),
    groupIdType: 'uuid',
    expiresAt: undefined,
    scopes: [],
    hasScope: () => false,
    groups: () => binding.groups,
    has: () => true,
    binding: () => binding,
  })
}

/** Writes (inserts, deletes, the parent thread) go to this group; pages are read from READ. */
const WRITE = tableGroup(0)
/** Keeps its 100 rows whatever the writes do, so the plans and the pages read stay the same. */
const READ = tableGroup(1)

/**
 * The holder's groups: `n` IDs, the two target groups last (the worst place for a linear scan),
 * the others real groups of the table first, then groups with no rows.
 */
function holderGroups(n: number, tableGroups: number): string[] {
  const groups: string[] = []
  for (let i = 2; i < n; i++) groups.push(i < tableGroups ? tableGroup(i) : randomUUID())
  if (n > 1) groups.push(READ)
  groups.push(WRITE)
  return groups
}

/**
 * The policy PostgREST/Supabase users write, in its recommended fast form: the claims read once
 * per statement through an uncorrelated subquery (an InitPlan), then a hashed `IN`.
 */
const PGRST_GROUPS =
  `SELECT (p ->> 'group')::uuid FROM jsonb_array_elements(` +
  `(SELECT current_setting('request.jwt.claims', true)::jsonb -> 'permissions')) AS p ` +
  `WHERE p ->> 'role' IN ('member', 'moderator', 'admin')`

async function setUp(client: pg.Client, rows: number, tableGroups: number): Promise<void> {
  await client.query(`
    DROP TABLE IF EXISTS bench_posts, bench_threads;
    CREATE TABLE bench_threads (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      group_id uuid NOT NULL,
      title text NOT NULL,
      created_by text NOT NULL);
    CREATE TABLE bench_posts (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      thread_id uuid NOT NULL REFERENCES bench_threads (id) ON DELETE CASCADE,
      content text NOT NULL,
      author text NOT NULL);
    INSERT INTO bench_threads (group_id, title, created_by)
      SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i % ${tableGroups}), 12, '0'))::uuid,
             'seed ' || i, 'seed'
      FROM generate_series(0, ${rows - 1}) AS i;
    CREATE INDEX bench_threads_group_id_idx ON bench_threads (group_id);
    CREATE INDEX bench_posts_thread_id_idx ON bench_posts (thread_id);
    ANALYZE bench_threads, bench_posts;
    DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PGRST_ROLE}') THEN
        CREATE ROLE ${PGRST_ROLE} NOLOGIN;
      END IF;
    END $$;
    GRANT SELECT, INSERT, DELETE ON bench_threads, bench_posts TO ${PGRST_ROLE};
    ALTER TABLE bench_threads ENABLE ROW LEVEL SECURITY;
    ALTER TABLE bench_posts ENABLE ROW LEVEL SECURITY;
    CREATE POLICY pgrst ON bench_threads TO ${PGRST_ROLE}
      USING (group_id IN (${PGRST_GROUPS})) WITH CHECK (group_id IN (${PGRST_GROUPS}));
    -- The parent's own policy applies inside the subquery: the usual Supabase pattern.
    CREATE POLICY pgrst ON bench_posts TO ${PGRST_ROLE}
      USING (EXISTS (SELECT 1 FROM bench_threads AS p WHERE p.id = thread_id))
      WITH CHECK (EXISTS (SELECT 1 FROM bench_threads AS p WHERE p.id = thread_id));
  `)
}

/** One PostgREST-style request: a transaction, the role and claims set locally, the statement. */
function pgrst(client: pg.Client, claims: string, withRole: boolean) {
  const set = withRole
    ? {
        name: 'bench_pgrst_set',
        text: `SELECT set_config('role', '${PGRST_ROLE}', true), set_config('request.jwt.claims', $1, true)`,
      }
    : { name: 'bench_tx_set', text: `SELECT set_config('request.jwt.claims', $1, true)` }
  return async (statement: pg.QueryConfig) => {
    await client.query('BEGIN')
    try {
      await client.query({ ...set, values: [claims] })
      await client.query(statement)
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK')
      throw error
    }
  }
}

interface Scenario {
  readonly group: string
  readonly sides: Side[]
  /** [subject, baseline, series name for the chart] */
  readonly compare: readonly [string, string, string?][]
}

export async function run(context: BenchContext): Promise<BenchSection> {
  const quick = context.quick
  const tableSizes = quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000]
  const counts = [1, 10, 100, 1_000, 10_000]
  const rounds = quick ? 5 : 8
  const basePerRound = quick ? 60 : 200
  const connect = async () => {
    const c = new pg.Client({ connectionString: context.databaseUrl })
    await c.connect()
    return c
  }
  let client = await connect()
  const rows: BenchRow[] = []
  const scaling: ScalingPoint[] = []
  const version = (await client.query('SHOW server_version')).rows[0].server_version as string
  const threadGuard = inGroup('group_id', 'member')
  const postGuard = viaParent(
    { table: 'bench_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' },
    'member',
  )
  try {
    for (const tableRows of tableSizes) {
      // 100 rows per group, so that a group always has the 50 rows a page reads.
      const tableGroups = Math.max(1, Math.floor(tableRows / 100))
      context.log(`sql: table of ${tableRows} rows, ${tableGroups} groups`)
      await setUp(client, tableRows, tableGroups)
      // A freshly loaded table has no hint bits or visibility map yet, and its dirty pages wait
      // for the checkpointer: left alone, both land in the first scenario's rounds.
      await client.query('VACUUM (ANALYZE) bench_threads, bench_posts')
      await client.query('CHECKPOINT')
      const target = WRITE
      const thread = (
        await client.query('SELECT id FROM bench_threads WHERE group_id = $1 LIMIT 1', [target])
      ).rows[0].id as string
      for (const n of counts) {
        if (quick && tableRows === 1_000 && n !== 1 && n !== 1_000) continue
        // Each point on a new connection, as a new process would see it: a prepared statement's
        // choice between re-planning and its generic plan follows the plans of its first five
        // executions on the connection, so on one connection for the whole run the hand-written
        // sides at 1 and 10 groups inherited the choice their 10 000-group executions had made
        // (a generic index scan, from a one-row estimate) and the points were not independent.
        await client.end()
        client = await connect()
        // The PostgREST sides take tens of milliseconds per request at 10 000 groups.
        const perRound = n >= 10_000 ? Math.ceil(basePerRound / 4) : basePerRound
        const groups = holderGroups(n, tableGroups)
        const cap = benchCapability(groups)
        // With one group the holder reads from the read group only (same size, same position).
        const readGroups = n > 1 ? groups : [READ]
        const readCap = benchCapability(readGroups)
        const literal = `{${readGroups.join(',')}}`
        const claims = JSON.stringify({
          sub: 'bench',
          permissions: groups.map((group) => ({ group, role: 'member' })),
        })
        const asPgrst = pgrst(client, claims, true)
        const asPgrstReader = pgrst(
          client,
          JSON.stringify({
            sub: 'bench',
            permissions: readGroups.map((group) => ({ group, role: 'member' })),
          }),
          true,
        )
        const inTx = pgrst(client, claims, false)
        const insertThread = (name: string) => ({
          name,
          text: 'INSERT INTO bench_threads (group_id, title, created_by) VALUES ($1, $2, $3) RETURNING *',
          values: [target, 'hello', 'bench'],
        })
        const insertPost = (name: string) => ({
          name,
          text: 'INSERT INTO bench_posts (thread_id, content, author) VALUES ($1, $2, $3) RETURNING *',
          values: [thread, 'hello', 'bench'],
        })
        const page = (name: string) => ({
          name,
          text: 'SELECT * FROM bench_threads WHERE group_id = $1 LIMIT 50',
          values: [READ],
        })
        // Rows for the DELETE sides, inserted before each round (not timed).
        const victims = new Map<string, string[]>()
        const prepareVictims = (side: string) => async (count: number) => {
          const result = await client.query(
            `INSERT INTO bench_threads (group_id, title, created_by)
             SELECT $1, 'victim', 'bench' FROM generate_series(1, $2) RETURNING id`,
            [target, count],
          )
          victims.set(
            side,
            result.rows.map((r) => r.id as string),
          )
        }
        const victim = (side: string, i: number) => victims.get(side)![i]!
        const scenarios: Scenario[] = [
          {
            group: 'INSERT (group column)',
            sides: [
              { name: 'plain INSERT … VALUES', op: () => client.query(insertThread('b_ins_t')) },
              {
                name: 'guardedInsert',
                op: () =>
                  guardedInsert(client, cap, {
                    into: 'bench_threads',
                    values: { group_id: target, title: 'hello', created_by: 'bench' },
                    guard: threadGuard,
                  }),
              },
              {
                name: 'plain INSERT in a transaction with claims set',
                op: () => inTx(insertThread('b_ins_t_tx')),
              },
              {
                name: 'PostgREST/Supabase (claims JSON in RLS)',
                op: () => asPgrst(insertThread('b_ins_t_rls')),
              },
            ],
            compare: [
              ['guardedInsert', 'plain INSERT … VALUES', 'insert: group column'],
              [
                'PostgREST/Supabase (claims JSON in RLS)',
                'plain INSERT … VALUES',
                'insert: PostgREST/Supabase',
              ],
              [
                'PostgREST/Supabase (claims JSON in RLS)',
                'plain INSERT in a transaction with claims set',
              ],
            ],
          },
          {
            group: 'INSERT (parent guard)',
            sides: [
              { name: 'plain INSERT … VALUES', op: () => client.query(insertPost('b_ins_p')) },
              {
                name: 'guardedInsert viaParent',
                op: () =>
                  guardedInsert(client, cap, {
                    into: 'bench_posts',
                    values: { thread_id: thread, content: 'hello', author: 'bench' },
                    guard: postGuard,
                  }),
              },
              {
                name: 'PostgREST/Supabase (claims JSON in RLS)',
                op: () => asPgrst(insertPost('b_ins_p_rls')),
              },
            ],
            compare: [
              ['guardedInsert viaParent', 'plain INSERT … VALUES', 'insert: parent guard'],
              ['PostgREST/Supabase (claims JSON in RLS)', 'plain INSERT … VALUES'],
            ],
          },
          {
            group: `SELECT 50 rows of one group`,
            sides: [
              { name: 'plain SELECT (no guard)', op: () => client.query(page('b_sel')) },
              {
                name: 'hand-written AND group_id = ANY($2)',
                op: () =>
                  client.query({
                    name: 'b_sel_any',
                    text: 'SELECT * FROM bench_threads WHERE group_id = $1 AND group_id = ANY ($2::uuid[]) LIMIT 50',
                    values: [READ, literal],
                  }),
              },
              {
                name: 'guardedSelect',
                op: () =>
                  guardedSelect(client, readCap, {
                    from: 'bench_threads',
                    where: { group_id: READ },
                    limit: 50,
                    guard: threadGuard,
                  }),
              },
              {
                name: 'PostgREST/Supabase (claims JSON in RLS)',
                op: () => asPgrstReader(page('b_sel_rls')),
              },
            ],
            compare: [
              ['guardedSelect', 'hand-written AND group_id = ANY($2)'],
              ['guardedSelect', 'plain SELECT (no guard)', 'select 50: one group'],
              ['PostgREST/Supabase (claims JSON in RLS)', 'plain SELECT (no guard)'],
            ],
          },
          {
            group: `SELECT 50 rows of all my groups`,
            sides: [
              {
                name: 'hand-written WHERE group_id = ANY($1)',
                op: () =>
                  client.query({
                    name: 'b_sel_all',
                    text: 'SELECT * FROM bench_threads WHERE group_id = ANY ($1::uuid[]) LIMIT 50',
                    // The literal built once, as keyhole does: the sides differ only by keyhole.
                    values: [literal],
                  }),
              },
              {
                name: 'guardedSelect',
                op: () =>
                  guardedSelect(client, readCap, {
                    from: 'bench_threads',
                    limit: 50,
                    guard: threadGuard,
                  }),
              },
            ],
            compare: [['guardedSelect', 'hand-written WHERE group_id = ANY($1)']],
          },
          {
            group: 'DELETE one row by id',
            sides: [
              {
                name: 'plain DELETE',
                prepare: prepareVictims('plain'),
                op: (i) =>
                  client.query({
                    name: 'b_del',
                    text: 'DELETE FROM bench_threads WHERE id = $1',
                    values: [victim('plain', i)],
                  }),
              },
              {
                name: 'guardedDelete',
                prepare: prepareVictims('guarded'),
                op: (i) =>
                  guardedDelete(client, cap, {
                    from: 'bench_threads',
                    where: { id: victim('guarded', i) },
                    guard: threadGuard,
                  }),
              },
              {
                name: 'PostgREST/Supabase (claims JSON in RLS)',
                prepare: prepareVictims('pgrst'),
                op: (i) =>
                  asPgrst({
                    name: 'b_del_rls',
                    text: 'DELETE FROM bench_threads WHERE id = $1',
                    values: [victim('pgrst', i)],
                  }),
              },
            ],
            compare: [
              ['guardedDelete', 'plain DELETE', 'delete by id'],
              ['PostgREST/Supabase (claims JSON in RLS)', 'plain DELETE'],
            ],
          },
        ]
        for (const scenario of scenarios) {
          const results = await interleave(scenario.sides, { rounds, perRound })
          const byName = new Map<string, SideResult>(results.map((r) => [r.name, r]))
          for (const [subject, baseline, series] of scenario.compare) {
            const s = byName.get(subject)!
            const b = byName.get(baseline)!
            const r = ratio(s, b)
            rows.push({
              group: scenario.group,
              name: subject,
              groups: n,
              tableRows,
              ops: s.ops,
              baseline,
              baselineOps: b.ops,
              ratio: r,
            })
            if (series !== undefined && tableRows === 100_000) {
              scaling.push({ series, groups: n, ratio: r })
            }
          }
        }
        context.log(`sql: ${tableRows} rows, ${n} groups done`)
      }
    }
    await client.query(`DROP TABLE bench_posts, bench_threads; DROP ROLE ${PGRST_ROLE}`)
  } finally {
    await client.end()
  }
  return {
    title: 'SQL guard cost',
    rows,
    scaling,
    goals: goals(rows),
    notes: [
      `PostgreSQL ${version}, one connection, ${rounds} measured rounds × ${basePerRound} operations per side (a quarter of that at 10 000 groups) after a warm-up round, sides interleaved, each round starting with a different side; ratio = median of the per-round throughput ratios.`,
      'Every statement is a named prepared statement; INSERTs return the row (RETURNING *) on every side.',
      'Parent guard INSERT: the thread never moves, so from 100 groups on, guardedInsert runs on the parent-group hint it learned in the warm-up round (src/sql/parent-hints.ts): the measured statement is the same INSERT with a one-group array (a miss or a stale hint costs more: docs/performance.md). The plain side inserts the same row without a guard.',
      'Hand-written baselines pass the group array as a literal built once (as keyhole caches it), so that the sides differ only by what keyhole does; passing a JS array instead costs pg a serialisation per query.',
      'The groups a statement targets are the last of the holder’s group IDs (the worst place for a linear scan). Writes go to one group, pages are read from another that keeps its 100 rows; with 1 group the holder of the SELECT sides is in the read group only.',
      'PostgREST/Supabase: BEGIN; set_config(role, claims JSON); the statement under an RLS policy that reads the claims once per statement (recommended InitPlan form); COMMIT — four round trips, as a pool without pipelining sends them.',
    ],
  }
}

function find(rows: readonly BenchRow[], group: string, name: string, tableRows: number) {
  return rows.filter((r) => r.group === group && r.name === name && r.tableRows === tableRows)
}

function summarise(goal: string, points: readonly BenchRow[], threshold: number): GoalResult {
  if (points.length === 0) return { goal, measured: '—', met: undefined }
  const worst = points.reduce((a, b) => ((a.ratio ?? 0) <= (b.ratio ?? 0) ? a : b))
  const measured = points.map((p) => `${p.groups}: ${p.ratio!.toFixed(2)}×`).join(', ')
  return {
    goal,
    measured: `${worst.ratio!.toFixed(2)}× worst (groups ${measured})`,
    met: worst.ratio! >= threshold,
  }
}

/** (guarded/plain at 1 000 groups) ÷ (guarded/plain at 10 groups): the cost growth, normalised. */
function flatness(rows: readonly BenchRow[], group: string, name: string): string | undefined {
  const points = find(rows, group, name, 100_000).filter((r) => r.baseline?.startsWith('plain'))
  const at = (n: number) => points.find((p) => p.groups === n)?.ratio
  const r10 = at(10)
  const r1000 = at(1_000)
  return r10 && r1000 ? (r1000 / r10).toFixed(2) : undefined
}

function goals(rows: readonly BenchRow[]): GoalResult[] {
  const plainOnly = (points: BenchRow[]) => points.filter((p) => p.baseline?.startsWith('plain'))
  const out: GoalResult[] = [
    summarise(
      'Guarded INSERT (group column) ≥ 0.95× plain INSERT (10⁵ rows)',
      plainOnly(find(rows, 'INSERT (group column)', 'guardedInsert', 100_000)),
      0.95,
    ),
    summarise(
      'Parent guard INSERT ≥ 0.90× plain INSERT (indexed FK, 10⁵ rows)',
      plainOnly(find(rows, 'INSERT (parent guard)', 'guardedInsert viaParent', 100_000)),
      0.9,
    ),
    summarise(
      'Guarded SELECT (indexed group column) within 10% of the same SELECT with WHERE group_id = ANY(…) (10⁵ rows)',
      find(rows, 'SELECT 50 rows of all my groups', 'guardedSelect', 100_000),
      0.9,
    ),
  ]
  for (const [group, name] of [
    ['INSERT (group column)', 'guardedInsert'],
    ['INSERT (parent guard)', 'guardedInsert viaParent'],
    ['SELECT 50 rows of one group', 'guardedSelect'],
    ['DELETE one row by id', 'guardedDelete'],
  ] as const) {
    const f = flatness(rows, group, name)
    out.push({
      goal: `${group}: cost with 1 000 groups ≥ 0.9× the cost with 10 (throughput ratio, normalised by plain)`,
      measured: f === undefined ? '—' : `${f}×`,
      met: f === undefined ? undefined : Number(f) >= 0.9,
    })
  }
  return out
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
        group: r.group,
        name: r.name,
        rows: r.tableRows,
        groups: r.groups,
        ops: r.ops?.toFixed(0),
        vs: r.baseline,
        ratio: r.ratio?.toFixed(2),
      })),
    )
    console.table(section.goals)
  } finally {
    await server?.stop()
  }
}
