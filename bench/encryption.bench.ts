/**
 * Encrypted columns: reading and updating one row of a table with one encrypted column (sealed
 * with AES-256-GCM on write, opened on read) against the same statements on the same table
 * without encryption. 'guard' mode through `bindPolicies`, one connection, in turns.
 * Goal (issue 19): each within 10% (≥ 0.9×).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Capability } from '../src/capability/capability.ts'
import { dataKeys } from '../src/encryption/data-keys.ts'
import { inGroup } from '../src/sql/guard.ts'
import { bindPolicies, definePolicies } from '../src/sql/policies.ts'
import { interleave, ratio } from './lib/interleave.ts'
import type { BenchContext, BenchSection } from './lib/types.ts'

const policies = definePolicies({
  bench_sealed_groups: {
    read: inGroup('id', 'member'),
    insert: inGroup('id', 'member'),
    update: inGroup('id', 'moderator'),
    encrypted: ['invite_code'],
  },
  bench_plain_groups: {
    read: inGroup('id', 'member'),
    insert: inGroup('id', 'member'),
    update: inGroup('id', 'moderator'),
  },
})

function capabilityOf(groups: readonly string[]): Capability {
  const binding = Object.freeze({ groups: Object.freeze([...groups]), isAdmin: false })
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
  const admin = new pg.Client({ connectionString: context.databaseUrl })
  await admin.connect()
  await admin.query(`
    DROP TABLE IF EXISTS bench_sealed_groups, bench_plain_groups;
    CREATE TABLE bench_sealed_groups (id uuid PRIMARY KEY, name text NOT NULL, invite_code text);
    CREATE TABLE bench_plain_groups (id uuid PRIMARY KEY, name text NOT NULL, invite_code text);`)
  await admin.end()
  const pool = new pg.Pool({ connectionString: context.databaseUrl, max: 1 })
  pool.on('error', () => {})
  try {
    const ids = Array.from({ length: 100 }, () => randomUUID())
    const capability = capabilityOf(ids)
    const db = bindPolicies(policies, pool, capability, {
      mode: 'guard',
      dataKeys: dataKeys({ current: randomBytes(32) }),
    })
    for (const table of ['bench_sealed_groups', 'bench_plain_groups']) {
      await db.insert(
        table,
        ids.map((id, i) => ({
          id,
          name: `group ${i}`,
          invite_code: randomBytes(9).toString('base64url'),
        })),
        { chosenKeys: ['id'] },
      )
    }
    const code = randomBytes(9).toString('base64url')
    const read = (table: string) => (i: number) => db.select(table, { id: ids[i % ids.length]! })
    const write = (table: string) => (i: number) =>
      db.update(table, { id: ids[i % ids.length]! }, { invite_code: code })
    const rounds = context.quick ? 6 : 12
    const perRound = context.quick ? 200 : 500
    context.log(`encryption: ${rounds} rounds of ${perRound} one-row reads and updates per side`)
    const [sealedRead, plainRead] = await interleave(
      [
        { name: 'sealed read', op: read('bench_sealed_groups') },
        { name: 'plain read', op: read('bench_plain_groups') },
      ],
      { rounds, perRound },
    )
    const [sealedWrite, plainWrite] = await interleave(
      [
        { name: 'sealed write', op: write('bench_sealed_groups') },
        { name: 'plain write', op: write('bench_plain_groups') },
      ],
      { rounds, perRound },
    )
    // Counted, not timed: the process CPU per operation of each side, in turns, after the timed
    // rounds. Both sides send one prepared statement per call (test/encryption/encrypted-columns
    // .test.ts pins it), so what encryption adds is this CPU: the AES-GCM and keyhole's wrapping.
    const cpu = async (op: (i: number) => Promise<unknown>) => {
      const before = process.cpuUsage()
      for (let i = 0; i < perRound; i++) await op(i)
      const used = process.cpuUsage(before)
      return (used.user + used.system) / perRound
    }
    const cpuOf = { sealedRead: 0, plainRead: 0, sealedWrite: 0, plainWrite: 0 }
    for (let r = 0; r < 2; r++) {
      cpuOf.sealedRead += (await cpu(read('bench_sealed_groups'))) / 2
      cpuOf.plainRead += (await cpu(read('bench_plain_groups'))) / 2
      cpuOf.sealedWrite += (await cpu(write('bench_sealed_groups'))) / 2
      cpuOf.plainWrite += (await cpu(write('bench_plain_groups'))) / 2
    }
    const µs = (n: number) => `${n.toFixed(0)} µs`
    context.log(
      `encryption: process CPU per read ${µs(cpuOf.sealedRead)} sealed, ${µs(cpuOf.plainRead)} plain; per update ${µs(cpuOf.sealedWrite)}, ${µs(cpuOf.plainWrite)}`,
    )
    const readRatio = ratio(sealedRead!, plainRead!)
    const writeRatio = ratio(sealedWrite!, plainWrite!)
    const group = 'one row by id (uuid), 3 columns, one of them encrypted; 100 rows'
    return {
      title: 'Encrypted column',
      rows: [
        {
          group,
          name: 'request.db.select: the row, invite_code opened (AES-256-GCM)',
          ops: sealedRead!.ops,
          baseline: 'the same select on the same table without encryption',
          baselineOps: plainRead!.ops,
          ratio: readRatio,
        },
        {
          group,
          name: 'request.db.update: invite_code sealed, the row returned and opened',
          ops: sealedWrite!.ops,
          baseline: 'the same update without encryption',
          baselineOps: plainWrite!.ops,
          ratio: writeRatio,
        },
      ],
      goals: [
        {
          goal: 'read of a row with one encrypted column within 10% of the same without (≥ 0.90×)',
          measured: `${readRatio.toFixed(3)}×`,
          met: readRatio >= 0.9,
        },
        {
          goal: 'write of a row with one encrypted column within 10% of the same without (≥ 0.90×)',
          measured: `${writeRatio.toFixed(3)}×`,
          met: writeRatio >= 0.9,
        },
      ],
      notes: [
        `Process CPU per operation (process.cpuUsage, ${2 * perRound} per side, in turns): read ${µs(cpuOf.sealedRead)} sealed vs ${µs(cpuOf.plainRead)} plain, update ${µs(cpuOf.sealedWrite)} vs ${µs(cpuOf.plainWrite)}. One round trip and one prepared statement per call on both sides; the difference is the AES-GCM and keyhole's wrapping (about 8 µs per read with warm caches, more between round trips on a loaded machine, where any CPU per call also costs more than its own time).`,
      ],
    }
  } finally {
    await pool.end()
  }
}
