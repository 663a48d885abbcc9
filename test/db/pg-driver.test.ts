/**
 * The pg boundary: pg is loaded on first use, from the application's install, and a feature that
 * needs it without pg installed says so (the consumer test runs the same without pg for real).
 */
import t from 'tap'
import { createRequire } from 'node:module'
import { loadPg, loadPgInternals, requirePg } from '../../src/db/pg-driver.ts'

const require = createRequire(import.meta.url)

t.test('loads the pg the application installed, once', async (t) => {
  const pg = loadPg('setup')
  t.equal(pg, require('pg'), 'the same module object as the application gets')
  t.equal(loadPg('migrate'), pg)
  t.equal(pg.escapeIdentifier('a"b'), '"a""b"')
  t.equal(pg.escapeLiteral("it's"), "'it''s'")
  const internals = loadPgInternals()
  t.equal(internals, loadPgInternals())
  t.equal(internals.Result, require('pg/lib/result.js'))
  t.equal(internals.prepareValue([1, 'a']), '{"1","a"}')
})

const notFound = (id: string) => () => {
  throw Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- x.js`), {
    code: 'MODULE_NOT_FOUND',
  })
}

t.test('without pg: one error naming the feature and the fix', async (t) => {
  for (const id of ['pg', 'pg/lib/result.js']) {
    t.throws(() => requirePg(id, 'keyhole check', notFound(id)), {
      code: 'ERR_MODULE_NOT_FOUND',
      message:
        'keyhole check needs the pg package (node-postgres ^8.11.0), which is not installed: npm install pg',
      cause: { code: 'MODULE_NOT_FOUND' },
    })
  }
})

t.test('any other failure is thrown as it is', async (t) => {
  const cases: [string, () => never][] = [
    ['a dependency of pg missing', notFound('pg-types')],
    [
      'a path pg no longer exports',
      () => {
        throw Object.assign(new Error("Package subpath './lib/result.js' is not defined"), {
          code: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        })
      },
    ],
  ]
  for (const [name, load] of cases) {
    t.throws(() => requirePg('pg/lib/result.js', 'a database session', load), { code: /./ }, name)
    t.throws(
      () => requirePg('pg/lib/result.js', 'a database session', load),
      { message: /^(?!.* needs the pg package)/ },
      `${name}: not reworded`,
    )
  }
})
