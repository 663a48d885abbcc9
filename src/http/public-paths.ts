/**
 * The `public` option matched against a request's PATH, for adapters whose middleware runs before
 * routing (Express): `'/health'` is that path, `':id'` a parameter, and an entry ending in `/*`
 * covers the path and everything below it. The matching is path-to-regexp's, with the options
 * Express 5's router gives it (case-insensitive unless `case sensitive routing`, one trailing slash
 * tolerated unless `strict routing`, the raw path: nothing decoded or normalised), so that an entry
 * covers exactly the paths Express routes to the route written the same way. Only `:name`
 * parameters are path syntax in an entry: any other character path-to-regexp reserves (`*`, `{`,
 * `(`, …) is literal, and an entry with an empty segment (`/a//b`) matches nothing. A path that
 * matches nothing needs a token: mistakes fail closed.
 */
import { match } from 'path-to-regexp'
import { ConfigurationError } from '../errors.ts'

/** How the application routes (Express's `case sensitive routing` and `strict routing`). */
export interface PathMatching {
  readonly caseSensitive?: boolean
  readonly strict?: boolean
}

/** path-to-regexp's reserved characters but `:`, which starts a parameter in an entry too. */
const reserved = /[{}()[\]+?!*\\]/g

/** An entry in path-to-regexp's syntax, as an Express route would be written. */
function routeOf(entry: string): string {
  if (!entry.endsWith('/*')) return entry.replace(reserved, '\\$&')
  const prefix = entry.slice(0, -2).replace(reserved, '\\$&')
  // `/docs/*`: `/docs` and everything below it; `/*`: every path, `/` included.
  return prefix === '' ? '/{*rest}' : `${prefix}{/*rest}`
}

/**
 * Express's router matches a route with a trailing slash removed unless routing is strict (its
 * `loosen`), and tolerates one trailing slash on the request unless strict (`trailing`).
 */
function loosen(route: string, strict: boolean): string {
  return strict || route === '/' ? route : route.replace(/\/+$/, '')
}

function compile(entries: readonly string[], strict: boolean, sensitive: boolean) {
  const routes = entries
    .filter((entry) => !entry.includes('//'))
    .map((entry) => {
      const route = routeOf(entry)
      try {
        return match(loosen(route, strict), { sensitive, trailing: !strict, decode: false })
      } catch (error) {
        throw new ConfigurationError(
          'KH_INVALID_OPTIONS',
          `Invalid option public: ${JSON.stringify(entry)} is not a route path (${(error as Error).message})`,
          error,
        )
      }
    })
  return (path: string) => routes.some((matches) => matches(path) !== false)
}

/**
 * A predicate over request paths (`req.path`: no query string) from the `public` entries, which
 * `resolveAdapterOptions` has already checked start with `/`. An entry that is not a route path
 * (`'/a/:'`, a parameter without a name) throws `KH_INVALID_OPTIONS` here.
 * @example
 * const isPublic = publicRequestPathMatcher(['/health', '/docs/*'])
 * isPublic('/docs/json') // true
 * isPublic('/healthz') // false
 */
export function publicRequestPathMatcher(
  entries: readonly string[],
): (path: string, matching?: PathMatching) => boolean {
  if (entries.length === 0) return () => false
  // One matcher per routing setting, all compiled now, so that a bad entry fails at start-up.
  const matchers = [false, true].flatMap((strict) =>
    [false, true].map((sensitive) => compile(entries, strict, sensitive)),
  )
  return (path, { caseSensitive = false, strict = false } = {}) =>
    (matchers[(strict ? 2 : 0) + (caseSensitive ? 1 : 0)] as (path: string) => boolean)(path)
}
