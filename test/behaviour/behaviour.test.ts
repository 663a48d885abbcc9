/**
 * The behaviour table (helpers/rows.ts), row by row, against the Fastify app and the Express app: the
 * same status, code, challenge, body and database effect from both adapters. Each subtest is
 * named `<adapter>: <row>`; the last assertion counts the rows each adapter passed.
 */
import t, { type Test } from 'tap'
import { SignJWT, type JWTPayload } from 'jose'
import { createKeyholeDatabase, type KeyholeDatabase } from '../db/helpers/keyhole.ts'
import { adapters, AUDIENCE, ISSUER, SECRET, startApp, type RunningApp } from './helpers/apps.ts'
import { member, rows, type Caller, type Row } from './helpers/rows.ts'

// Each adapter gets its own database, the same at the start: the rows write.
let k: KeyholeDatabase
let groups: Record<'A' | 'B' | 'X', string>

const encode = (text: string) => new TextEncoder().encode(text)

async function sign(claims: JWTPayload, secret = SECRET): Promise<string> {
  const jwt = new SignJWT({ iss: ISSUER, aud: AUDIENCE, ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
  if (!('exp' in claims)) jwt.setExpirationTime('5m')
  return jwt.sign(encode(secret))
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** The Authorization header a caller sends, if any. */
async function authorization(caller: Caller): Promise<string | undefined> {
  if (caller === undefined) return undefined
  if ('sub' in caller) {
    const permissions = caller.permissions.map((p) => ({ group: groups[p.group], role: p.role }))
    const scope =
      caller.scope === undefined
        ? {}
        : typeof caller.scope === 'string'
          ? { scope: caller.scope }
          : { scp: caller.scope }
    return `Bearer ${await sign({ sub: caller.sub, permissions, ...scope })}`
  }
  if ('header' in caller) {
    return caller.header.replace('<token>', (await authorization(member))!.slice('Bearer '.length))
  }
  const alice = { sub: 'alice', permissions: [{ group: groups.A, role: 'member' }] }
  const now = Math.floor(Date.now() / 1000)
  const tokens = {
    'wrong-key': () => sign(alice, 'another-secret-of-at-least-32-bytes!!'),
    expired: () => sign({ ...alice, exp: now - 3600 }),
    'wrong-audience': () => sign({ ...alice, aud: 'another-api' }),
    'alg-none': async () =>
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...alice, iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}.`,
    'bad-permissions': () => sign({ sub: 'alice', permissions: [{ group: 'A', level: 'member' }] }),
    'bad-scope': () => sign({ ...alice, scope: 'notes:read', scp: ['notes:read'] }),
    'ten-years': () => sign({ ...alice, exp: now + 10 * 365 * 86_400 }),
    'id-token': () => sign({ ...alice, at_hash: 'x4ksQ3M4bL2Qk0fBq0gSdw', nonce: 'n-0S6' }),
  }
  return `Bearer ${await tokens[caller.token]()}`
}

async function seedNote(group: string, body: string): Promise<number> {
  const { rows } = await k.db.pool.query<{ id: number }>(
    `INSERT INTO notes (group_id, owner, body) VALUES ($1, 'seed', $2) RETURNING id`,
    [group, body],
  )
  return rows[0]!.id
}

async function noteCount(): Promise<number> {
  const { rows } = await k.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM notes')
  return rows[0]!.n
}

async function noteBody(id: number): Promise<string | undefined> {
  const { rows } = await k.db.pool.query<{ body: string }>('SELECT body FROM notes WHERE id = $1', [
    id,
  ])
  return rows[0]?.body
}

/** The row's placeholders filled in: group IDs, and fresh notes (so rows never share state). */
async function resolve(row: Row) {
  const notes: Record<string, number> = {}
  let path = row.path.replace(/:([AB])\b/g, (_, g: 'A' | 'B') => groups[g])
  for (const [placeholder, group] of [
    [':noteA', groups.A],
    [':noteB', groups.B],
  ] as const) {
    if (path.includes(placeholder)) {
      notes.id = await seedNote(group, 'original')
      path = path.replace(placeholder, String(notes.id))
    }
  }
  let body: Record<string, unknown> | undefined
  if (row.body !== undefined) {
    body = {}
    for (const [key, value] of Object.entries(row.body)) {
      body[key] =
        value === ':A'
          ? groups.A
          : value === ':B'
            ? groups.B
            : value === ':noteB'
              ? await seedNote(groups.B, 'hidden')
              : value
    }
  }
  return { path, body, noteId: notes.id }
}

async function check(t: Test, app: RunningApp, row: Row): Promise<void> {
  const { path, body, noteId } = await resolve(row)
  const headers: Record<string, string> = { ...row.headers }
  const auth = await authorization(row.caller)
  if (auth !== undefined) headers.authorization = auth
  const before = await noteCount()
  const answer = await app.request(row.method, path, headers, body)
  const { expect } = row

  t.equal(answer.status, expect.status, 'status')
  if (expect.challenge !== undefined) {
    t.equal(answer.headers.get('www-authenticate'), expect.challenge, 'WWW-Authenticate')
  }
  if (expect.code !== undefined) {
    const error = JSON.parse(answer.text) as Record<string, unknown>
    t.same(Object.keys(error).sort(), ['code', 'error', 'message', 'statusCode'], 'error shape')
    t.equal(error.code, expect.code, 'code')
    t.equal(error.statusCode, expect.status, 'statusCode in the body')
    t.notMatch(answer.text, /eyJ|stack|SELECT|INSERT/, 'no token, stack or SQL in the body')
  }
  if (expect.json !== undefined) t.same(JSON.parse(answer.text), expect.json, 'body')
  if (expect.notes?.added !== undefined) {
    t.equal((await noteCount()) - before, expect.notes.added, 'notes added or removed')
  }
  if (expect.notes?.renamedTo !== undefined) {
    const wanted = expect.notes.renamedTo ?? 'original'
    t.equal(await noteBody(noteId as number), wanted, 'the note after the request')
  }
}

const passed: Record<string, number> = {}
for (const adapter of adapters) {
  t.test(adapter, async (t) => {
    k = await createKeyholeDatabase(t)
    groups = { A: k.groupA, B: k.groupB, X: '00000000-0000-4000-8000-00000000000f' }
    const app = await startApp(t, adapter, k)
    passed[adapter] = 0
    for (const row of rows) {
      await t.test(`${adapter}: ${row.name}`, async (t) => {
        await check(t, app, row)
        if (t.passing()) passed[adapter] = (passed[adapter] ?? 0) + 1
      })
    }
  })
}

t.test('every row passes on both adapters', async (t) => {
  t.comment(`behaviour rows: ${rows.length}; fastify ${passed.fastify}, express ${passed.express}`)
  t.same(passed, { fastify: rows.length, express: rows.length })
})
