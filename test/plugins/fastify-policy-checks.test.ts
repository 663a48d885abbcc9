/**
 * In 'rls' mode the plugin's start-up checks hold the installed policies to the application's own:
 * the server starts on the policies its migration applied, and refuses when one was changed in
 * place, replaced by hand or added beside them. In 'guard' mode the installed policies are judged
 * by their text only (the statements carry the guard).
 */
import t from 'tap'
import Fastify from 'fastify'
import { capabilities, type FastifyKeyholeOptions } from '../../plugins/fastify.ts'
import { createKeyholeDatabase, notesPolicies } from '../db/helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)
const tokenOptions = {
  secret: 'a-test-secret-of-at-least-32-bytes-0123456789',
  algorithms: ['HS256'],
} satisfies Partial<FastifyKeyholeOptions>

async function start(options: Partial<FastifyKeyholeOptions> = {}): Promise<void> {
  const pool = k.runtimePool(1)
  const app = Fastify()
  try {
    await app.register(capabilities, {
      ...tokenOptions,
      database: { pool, policies: notesPolicies, signingKey: k.signingKey },
      monitor: false,
      ...options,
    })
    await app.ready()
  } finally {
    await app.close()
  }
}

/** Runs `sql` as the migration role (the owner of the table and its policies). */
async function asOwner(sql: string): Promise<void> {
  await k.db.pool.query(`SET ROLE "${k.migrator.name}"; ${sql}; RESET ROLE`)
}

/** The codes of the findings `start` refused with (none when it started). */
async function refusal(options?: Partial<FastifyKeyholeOptions>): Promise<string[]> {
  return start(options).then(
    () => [],
    (error: { code: string; findings: { code: string }[] }) => {
      if (error.code !== 'KH_INSECURE_DATABASE') throw error
      return error.findings.map((finding) => finding.code)
    },
  )
}

t.test('the policies the migration applied: the server starts', async (t) => {
  await t.resolves(start())
})

t.test('a policy changed in place: refused with KH_DB_POLICY_ALTERED until restored', async (t) => {
  const { rows } = await k.db.pool.query<{ qual: string }>(
    `SELECT pg_get_expr(polqual, polrelid) AS qual FROM pg_policy WHERE polname = 'keyhole_select'`,
  )
  const original = (rows[0] as { qual: string }).qual
  // Still reads the capability, so its text looks sound; yet authors now read their notes in
  // groups they have left.
  await asOwner(
    `ALTER POLICY keyhole_select ON notes USING (${original} OR owner = (SELECT keyhole.subject()))`,
  )
  t.same(await refusal(), ['KH_DB_POLICY_ALTERED'])
  await asOwner(`ALTER POLICY keyhole_select ON notes USING (${original})`)
  await t.resolves(start())
})

t.test('a permissive policy beside them: refused with KH_DB_POLICY_UNEXPECTED', async (t) => {
  // It reads the capability, so its text looks sound; yet it lets a holder read their own notes
  // in every group, which the application's policies never allowed.
  await asOwner(
    `CREATE POLICY extra ON notes FOR SELECT TO "${k.runtime.name}"
       USING (owner = (SELECT keyhole.subject()))`,
  )
  t.same(await refusal(), ['KH_DB_POLICY_UNEXPECTED'])
  await t.resolves(
    start({ checks: { policies: undefined } }),
    'told to judge the text only, the check accepts a policy that is not always true',
  )
  await asOwner('DROP POLICY extra ON notes')
  await t.resolves(start())
})
