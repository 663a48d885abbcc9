/**
 * The compiled-statement cache is bounded (shapes can come from request input) and keeps the
 * statements in use: least recently used goes first.
 */
import t from 'tap'
import { cachedStatement } from '../../src/sql/compile.ts'

const compiled = () =>
  Object.freeze({ text: 'SELECT 1', name: 'keyhole_x', sources: [], roles: [] })

t.test('a statement in use stays while a flood of new shapes passes through', async (t) => {
  let builds = 0
  const hot = () => cachedStatement('statement-cache-hot', () => (builds++, compiled()))
  hot()
  for (let i = 0; i < 5000; i++) {
    cachedStatement(`statement-cache-flood-${i}`, compiled)
    if (i % 100 === 0) hot()
  }
  t.equal(builds, 1, 'compiled once (a first-in-first-out cache rebuilt it every 1 000 shapes)')
  let rebuilt = 0
  cachedStatement('statement-cache-flood-0', () => (rebuilt++, compiled()))
  t.equal(rebuilt, 1, 'bounded: a shape not used since 1 000 others is gone')
})
