/**
 * The names keyhole gives the texts it prepares for the application: a prefix and a hash of the
 * text, the same for the same text, and none past the namer's budget of 200 texts.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { PREPARED_TEXTS, statementNamer } from '../../src/sql/statement-names.ts'

t.test('a text is named after its hash, the same each time, up to the budget', async (t) => {
  const nameOf = statementNamer('keyhole_test_')
  const hash = createHash('sha256').update('SELECT 1').digest('hex').slice(0, 32)
  t.equal(nameOf('SELECT 1'), `keyhole_test_${hash}`)
  t.equal(nameOf('SELECT 1'), `keyhole_test_${hash}`, 'the same text, the same name')
  for (let i = 2; i <= PREPARED_TEXTS; i++) t.ok(nameOf(`SELECT ${i}`), `text ${i} is named`)
  t.equal(nameOf('SELECT -1'), undefined, 'past the budget: unnamed')
  t.equal(nameOf('SELECT 1'), `keyhole_test_${hash}`, 'a text named before keeps its name')
  t.ok(statementNamer('keyhole_other_')('SELECT -1'), 'each namer has its own budget')
})
