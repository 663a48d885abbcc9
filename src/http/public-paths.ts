/**
 * The `public` option matched against a request's PATH, for adapters whose middleware runs before
 * routing (Express): `'/health'` is that path, `':id'` one non-empty segment, and an entry ending
 * in `/*` covers the path and everything below it. Matching follows Express's defaults (case-
 * insensitive, one trailing slash tolerated) and never reaches further than Express would route:
 * segments are compared as sent (an encoded `%2F` stays inside its segment), and an empty segment
 * (`//health`) matches nothing. A path that matches nothing needs a token: mistakes fail closed.
 */

interface Pattern {
  /** Lower-cased literal segments; `undefined` where a `:param` takes any non-empty segment. */
  readonly segments: readonly (string | undefined)[]
  /** True for `/*`: any further segments are covered too. */
  readonly below: boolean
}

function compile(entry: string): Pattern {
  const below = entry.endsWith('/*')
  const path = below ? entry.slice(0, -2) : entry
  const segments = path
    .split('/')
    .slice(1)
    .filter((segment, index, all) => !(segment === '' && index === all.length - 1))
    .map((segment) => (segment.startsWith(':') ? undefined : segment.toLowerCase()))
  return { segments, below }
}

function matches(pattern: Pattern, segments: readonly string[]): boolean {
  const wanted = pattern.segments
  if (segments.length < wanted.length) return false
  if (segments.length > wanted.length && !pattern.below) return false
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string
    if (segment === '') return false
    if (i >= wanted.length) continue
    const literal = wanted[i]
    if (literal !== undefined && segment.toLowerCase() !== literal) return false
  }
  return true
}

/**
 * A predicate over request paths (`req.path`: no query string) from the `public` entries, which
 * `resolveAdapterOptions` has already checked start with `/`.
 */
export function publicPathMatcher(entries: readonly string[]): (path: string) => boolean {
  if (entries.length === 0) return () => false
  const patterns = entries.map(compile)
  return (path) => {
    // One trailing slash is the same route to Express; `/` itself has no segments.
    const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
    const segments = trimmed === '/' ? [] : trimmed.split('/').slice(1)
    return patterns.some((pattern) => matches(pattern, segments))
  }
}
