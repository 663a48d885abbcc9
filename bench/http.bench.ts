/**
 * HTTP (autocannon against the example app on 127.0.0.1): `POST /groups/:id/threads` and
 * `GET /groups/:id/threads` through keyhole, against the same route with no authentication and a
 * plain statement (the floor) and written the way a user would without keyhole (`@fastify/jwt`
 * plus a hand-written guarded statement). Needs the Fastify plugin and the example app.
 */
import { access } from 'node:fs/promises'
import type { BenchContext, BenchSection } from './lib/types.ts'

const PLUGIN = new URL('../plugins/fastify.ts', import.meta.url)

export async function run(_context: BenchContext): Promise<BenchSection> {
  const title = 'HTTP'
  const plugin = await access(PLUGIN).then(
    () => true,
    () => false,
  )
  if (!plugin) {
    return {
      title,
      rows: [],
      pending:
        'plugins/fastify.ts has not landed, so the example app (example-app/app.ts build()) cannot start yet',
    }
  }
  return { title, rows: [], pending: 'the HTTP comparison is not written yet' }
}
