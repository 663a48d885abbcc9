/**
 * sql/000002 replaced `keyhole.reset_session()` by `keyhole.reset_session(parsed integer)`, and
 * 000003 puts version 1 back. A database set up at version 1 and upgraded by `keyhole migrate`
 * alone (which grants nothing) keeps working: whoever could execute the function still can, nobody
 * else can, and the integer version is gone.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { keyholeSqlDirectory } from '../../src/db/keyhole-sql.ts'
import { migrate } from '../../src/db/migrate.ts'
import { createSessionFactory } from '../../src/db/session.ts'
import { capability, createKeyholeDatabase } from './helpers/keyhole.ts'

const k = await createKeyholeDatabase(t)

// Back to the previous version, as the migration role: version 1's function, granted by setup.
const version1 = await readFile(join(keyholeSqlDirectory(), '000001.do.keyhole-schema.sql'), 'utf8')
const oldFunction = version1.slice(
  version1.indexOf('CREATE FUNCTION keyhole.reset_session()'),
  version1.indexOf('REVOKE ALL ON FUNCTION keyhole.reset_session() FROM PUBLIC;'),
)
const migrator = new pg.Client({ connectionString: k.migratorUrl })
await migrator.connect()
await migrator.query('DROP FUNCTION keyhole.reset_session()')
await migrator.query('DELETE FROM keyhole.schemaversion WHERE version IN (2, 3)')
await migrator.query(oldFunction)
await migrator.query('REVOKE ALL ON FUNCTION keyhole.reset_session() FROM PUBLIC')
await migrator.query(`GRANT EXECUTE ON FUNCTION keyhole.reset_session() TO "${k.runtime.name}"`)
await migrator.end()

t.test('keyhole migrate upgrades reset_session with its grant, through version 2', async (t) => {
  t.same((await migrate(k.migratorUrl)).keyhole, [2, 3], 'versions 2 and 3 applied')
  const { rows } = await k.db.pool.query(
    `SELECT to_regprocedure('keyhole.reset_session(integer)') IS NULL AS integer_gone,
       has_function_privilege($1, 'keyhole.reset_session()', 'EXECUTE') AS runtime,
       has_function_privilege('public', 'keyhole.reset_session()', 'EXECUTE') AS public`,
    [k.runtime.name],
  )
  t.same(rows, [{ integer_gone: true, runtime: true, public: false }])
  const sessions = createSessionFactory({ pool: k.runtimePool(1), signingKey: k.signingKey })
  const bob = capability({ subject: 'bob', groups: { member: [k.groupB] } })
  const read = await sessions.runOne(bob, 'SELECT keyhole.subject() AS s')
  t.same(read.rows, [{ s: 'bob' }], 'a request with its own SQL ends with the reset')
})
