import t from 'tap'
import { publicRoutePatternMatcher } from '../../src/http/public-routes.ts'

t.test('exact entries and /* subtrees, matched against the route pattern', async (t) => {
  const isPublic = publicRoutePatternMatcher(['/health', '/posts/:id', '/docs/*'])
  const rows: [string | undefined, boolean][] = [
    ['/health', true],
    ['/posts/:id', true],
    ['/docs', true],
    ['/docs/json', true],
    ['/docs/static/*', true],
    ['/health/deep', false],
    ['/healthz', false],
    ['/documents', false],
    ['/posts/42', false],
    ['/', false],
    [undefined, false],
  ]
  for (const [route, expected] of rows) t.equal(isPublic(route), expected, String(route))
})

t.test('/* alone: every route, and only on purpose', async (t) => {
  const all = publicRoutePatternMatcher(['/*'])
  t.ok(all('/'))
  t.ok(all('/anything/at/all'))
  t.notOk(all(undefined), 'the 404 handler stays protected')
  t.notOk(publicRoutePatternMatcher([])('/'), 'nothing is public by default')
})
