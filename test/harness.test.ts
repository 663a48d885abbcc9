import t from 'tap'
import { createTestDatabase } from './helpers/database.ts'

t.test('each test file gets its own fresh database on a real PostgreSQL', async (t) => {
  const db = await createTestDatabase(t)
  const { rows } = await db.pool.query<{ db: string; v: number }>(
    `SELECT current_database() AS db, current_setting('server_version_num')::int AS v`,
  )
  t.equal(rows[0]?.db, db.name)
  t.ok((rows[0]?.v ?? 0) >= 140000, 'PostgreSQL 14 or newer')
  const tables = await db.pool.query(`SELECT 1 FROM pg_tables WHERE schemaname = 'public'`)
  t.equal(tables.rowCount, 0, 'the database starts empty')
})
