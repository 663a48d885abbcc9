/**
 * The behaviour table (helpers/rows.ts) without HTTP: a worker acting for a caller gets exactly
 * the answer the HTTP apps give that caller. For each row the token's claims become a capability
 * (`keyhole.capabilityFromClaims`), the route's handler (the same `handlers` apps.ts serves) runs
 * through `keyhole.run`, in 'guard' mode and in 'rls' mode, and the outcome must be the row's:
 * the same rows, or an error with the same status and wire code, and the same database effect
 * (nothing written on a refusal).
 *
 * Rows whose answer HTTP alone decides are skipped, each for a stated reason, and counted: the
 * last test pins how many rows are replayed and how many are skipped for each reason, so a new
 * row is either replayed or classified, and the file cannot pass by replaying nothing.
 */
import t, { type Test } from 'tap'
import { assertRole } from '../../src/capability/assert-role.ts'
import type { Capability } from '../../src/capability/capability.ts'
import { createKeyhole, type Keyhole } from '../../src/db/create-keyhole.ts'
import { CapabilityDenied, KeyholeError } from '../../src/errors.ts'
import type { PolicyHandle } from '../../src/sql/policies.ts'
import {
  createKeyholeDatabase,
  notesPolicies,
  type KeyholeDatabase,
} from '../db/helpers/keyhole.ts'
import { handlers } from './helpers/apps.ts'
import { rows, type Caller, type Row } from './helpers/rows.ts'

type Body = { id?: unknown; group?: unknown; body?: unknown }
type Params = Record<string, string>
type Work = (db: PolicyHandle, capability: Capability, params: Params, body: Body) => unknown

/**
 * Each route of apps.ts: the keyhole calls its handler makes, or why a worker has none.
 * A `requireRole` preHandler is `assertRole` on the capability, before the handler.
 */
const routes: Record<string, Work | { readonly httpOnly: Reason }> = {
  'GET /health': { httpOnly: 'public' },
  'GET /me': (_db, capability) => handlers.me(capability),
  'GET /mod': (_db, capability) => (assertRole(capability, 'moderator'), { ok: true }),
  'GET /groups/:groupId/mod': (_db, capability, { groupId }) => (
    assertRole(capability, 'moderator', groupId),
    { ok: true }
  ),
  'GET /scoped': { httpOnly: 'scope' },
  'GET /groups/:groupId/scoped-mod': { httpOnly: 'scope' },
  'GET /notes': (db) => handlers.notes(db),
  'POST /notes': (db, capability, _params, body) => handlers.create(db, capability, body),
  'PATCH /notes/:id': (db, _capability, { id }, body) => handlers.rename(db, id!, body),
  'DELETE /notes/:id': (db, _capability, { id }) => handlers.remove(db, id!),
}

/** Why a row is not replayed: its answer is decided before any capability exists, or by HTTP. */
const reasons = {
  token:
    'the token decides (missing, a raw Authorization header, its signature, times, audience or form)',
  scope: 'a route behind requireScope: a capability from claims carries no scope',
  public: 'a public route: no capability, no statement',
  wire: 'request headers: how HTTP reads the body',
}
type Reason = keyof typeof reasons

/** How many rows each mode replays, and how many are skipped for each reason (of rows.length). */
const expected = { replayed: 28, skipped: { token: 16, scope: 9, public: 1, wire: 1 } }

const groupX = '00000000-0000-4000-8000-00000000000f'

/**
 * The claims the row's token carries, as behaviour.test.ts signs them; the one broken token whose
 * claims a worker could be handed (malformed permissions) is replayed too.
 */
function claimsOf(caller: Caller, groups: Record<'A' | 'B' | 'X', string>) {
  if (caller !== undefined && 'token' in caller && caller.token === 'bad-permissions') {
    return { sub: 'alice', permissions: [{ group: 'A', level: 'member' }] }
  }
  if (caller === undefined || !('sub' in caller)) return undefined
  const permissions = caller.permissions.map((p) => ({ group: groups[p.group], role: p.role }))
  return { sub: caller.sub, permissions }
}

/** The route of `method path`, with its parameters. */
function route(method: string, path: string) {
  for (const [name, work] of Object.entries(routes)) {
    const [routeMethod, pattern] = name.split(' ') as [string, string]
    const names: string[] = []
    const source = pattern.replace(/:(\w+)/g, (_, param: string) => (names.push(param), '([^/]+)'))
    const match = new RegExp(`^${source}$`).exec(path)
    if (routeMethod !== method || match === null) continue
    const params = Object.fromEntries(names.map((param, i) => [param, match[i + 1]!]))
    return { name, work, params }
  }
  return undefined
}

/** The row replayed without HTTP, or the reason it is not. */
function classify(row: Row): { skip: Reason } | { replay: true } {
  const found = route(row.method, row.path)
  if (found !== undefined && typeof found.work !== 'function') return { skip: found.work.httpOnly }
  const caller = row.caller
  if (caller === undefined || 'header' in caller) return { skip: 'token' }
  if ('token' in caller && caller.token !== 'bad-permissions') return { skip: 'token' }
  if (row.headers !== undefined) return { skip: 'wire' }
  if (found === undefined) throw new Error(`no route for a caller with claims: ${row.name}`)
  return { replay: true }
}

const modes = ['guard', 'rls'] as const
const counted: Record<string, { replayed: number; skipped: Record<string, number> }> = {}

for (const mode of modes) {
  t.test(`${mode} mode: each row's caller, through keyhole.run`, async (t) => {
    const k = await createKeyholeDatabase(t)
    if (mode === 'guard') {
      // 'guard' mode is a deployment without row-level security: the guard alone decides.
      await k.db.pool.query(
        'ALTER TABLE notes DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY',
      )
    }
    const pool = k.runtimePool(2)
    const keyhole = createKeyhole(
      mode === 'rls'
        ? { pool, policies: notesPolicies, signingKey: k.signingKey }
        : { pool, policies: notesPolicies, mode: 'guard' },
    )
    t.equal(keyhole.mode, mode)
    const count: { replayed: number; skipped: Record<string, number> } = {
      replayed: 0,
      skipped: {},
    }
    counted[mode] = count
    for (const row of rows) {
      const decided = classify(row)
      if ('skip' in decided) {
        count.skipped[decided.skip] = (count.skipped[decided.skip] ?? 0) + 1
        continue
      }
      await t.test(`${mode}: ${row.name}`, async (t) => {
        await replay(t, k, keyhole, row)
        if (t.passing()) count.replayed++
      })
    }
  })
}

/** The row's placeholders filled in as behaviour.test.ts does: group IDs and fresh notes. */
async function resolve(k: KeyholeDatabase, row: Row) {
  const seed = async (group: string, body: string) =>
    (
      await k.db.pool.query<{ id: number }>(
        `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'seed', $2) RETURNING id`,
        [group, body],
      )
    ).rows[0]!.id
  const groups = { A: k.groupA, B: k.groupB }
  let path = row.path.replace(/:([AB])\b/g, (_, g: 'A' | 'B') => groups[g])
  let noteId: number | undefined
  for (const [placeholder, group] of [
    [':noteA', k.groupA],
    [':noteB', k.groupB],
  ] as const) {
    if (path.includes(placeholder)) {
      noteId = await seed(group, 'original')
      path = path.replace(placeholder, String(noteId))
    }
  }
  const body: Body = {}
  for (const [key, value] of Object.entries(row.body ?? {})) {
    ;(body as Record<string, unknown>)[key] =
      value === ':A'
        ? k.groupA
        : value === ':B'
          ? k.groupB
          : value === ':noteB'
            ? await seed(k.groupB, 'hidden')
            : value
  }
  return { path, body, noteId }
}

async function replay(t: Test, k: KeyholeDatabase, keyhole: Keyhole, row: Row): Promise<void> {
  const { path, body, noteId } = await resolve(k, row)
  const { work, params } = route(row.method, path)! as { work: Work; params: Params }
  const claims = claimsOf(row.caller, { A: k.groupA, B: k.groupB, X: groupX })!
  const noteCount = async () =>
    (await k.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM notes')).rows[0]!.n
  const before = await noteCount()

  const outcome = await (async () => {
    const capability = keyhole.capabilityFromClaims(claims)
    return keyhole.run(capability, async (db) => work(db, capability, params, body))
  })().then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )

  const { expect } = row
  if ('error' in outcome) {
    t.ok(expect.status >= 400, `refused: ${String(outcome.error)}`)
    t.type(outcome.error, KeyholeError, 'a keyhole error')
    const error = outcome.error as KeyholeError
    // What the adapters send is the error's toJSON(): a denial on a row the caller cannot see
    // (CapabilityDenied, not visible) is byte for byte a 404 KH_NOT_FOUND.
    const wire = error.toJSON()
    t.same(
      { status: error.statusCode, wireStatus: wire.statusCode, code: wire.code },
      { status: expect.status, wireStatus: expect.status, code: expect.code },
      'the status and code HTTP answers',
    )
    if (error instanceof CapabilityDenied) {
      t.equal(error.visible, expect.status === 403, 'visible exactly when 403')
    }
  } else {
    t.ok(expect.status < 300, `succeeded as HTTP does (${expect.status})`)
    if (expect.json !== undefined) t.same(outcome.value, expect.json, 'the same rows')
  }
  t.equal((await noteCount()) - before, expect.notes?.added ?? 0, 'notes added or removed')
  if (expect.notes?.renamedTo !== undefined) {
    const { rows } = await k.db.pool.query<{ body: string }>(
      'SELECT body FROM notes WHERE id = $1',
      [noteId],
    )
    t.equal(rows[0]?.body, expect.notes.renamedTo ?? 'original', 'the note afterwards')
  }
}

t.test(
  'every replayable row gives the HTTP outcome in both modes; the rest are counted',
  async (t) => {
    for (const [reason, n] of Object.entries(counted.rls?.skipped ?? {})) {
      t.comment(`skipped ${n}: ${reasons[reason as Reason]}`)
    }
    t.comment(
      `rows ${rows.length}; replayed guard ${counted.guard?.replayed}, rls ${counted.rls?.replayed}`,
    )
    t.same(counted, { guard: expected, rls: expected })
    t.equal(
      expected.replayed + Object.values(expected.skipped).reduce((a, b) => a + b, 0),
      rows.length,
      'every row is replayed or skipped for a reason',
    )
  },
)
