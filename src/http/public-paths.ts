/**
 * The `public` option matched against a request's PATH, for adapters whose middleware runs before
 * routing (Express): `'/health'` is that path, `':id'` one non-empty segment, and an entry ending
 * in `/*` covers the path and everything below it. Matching follows Express's routing (by default
 * case-insensitive, one trailing slash tolerated; the app's `case sensitive routing` and `strict
 * routing` settings tighten it) and never reaches further than Express would route: segments are
 * compared as sent (an encoded `%2F` stays inside its segment, nothing is decoded or normalised),
 * and an empty segment (`//health`) matches nothing. A path that matches nothing needs a token:
 * mistakes fail closed.
 */

interface Pattern {
  /** Literal segments; `undefined` where a `:param` takes any non-empty segment. */
  readonly segments: readonly (string | undefined)[]
  /** Lower-cased literal segments, for case-insensitive matching. */
  readonly lower: readonly (string | undefined)[]
  /** True for `/*`: any further segments are covered too. */
  readonly below: boolean
  /** The entry ends with `/` (only strict routing tells it apart). */
  readonly slash: boolean
}

/** How the application routes (Express's `case sensitive routing` and `strict routing`). */
export interface PathMatching {
  readonly caseSensitive?: boolean
  readonly strict?: boolean
}

function compile(entry: string): Pattern {
  const below = entry.endsWith('/*')
  const path = below ? entry.slice(0, -2) : entry
  const slash = path.length > 1 && path.endsWith('/')
  const trimmed = slash ? path.slice(0, -1) : path
  // An empty segment inside an entry (`/a//b`) stays a literal '' that no request segment matches.
  const segments = (trimmed === '/' || trimmed === '' ? [] : trimmed.split('/').slice(1)).map(
    (segment) => (segment.startsWith(':') ? undefined : segment),
  )
  const lower = segments.map((segment) => segment?.toLowerCase())
  return { segments, lower, below, slash }
}

function matches(
  pattern: Pattern,
  segments: readonly string[],
  slash: boolean,
  { caseSensitive = false, strict = false }: PathMatching,
): boolean {
  const wanted = caseSensitive ? pattern.segments : pattern.lower
  if (segments.length < wanted.length) return false
  if (segments.length > wanted.length && !pattern.below) return false
  if (strict && !pattern.below && slash !== pattern.slash) return false
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string
    if (segment === '') return false
    const literal = wanted[i]
    if (literal === undefined) continue
    if ((caseSensitive ? segment : segment.toLowerCase()) !== literal) return false
  }
  return true
}

/**
 * A predicate over request paths (`req.path`: no query string) from the `public` entries, which
 * `resolveAdapterOptions` has already checked start with `/`.
 * @example
 * const isPublic = publicPathMatcher(['/health', '/docs/*'])
 * isPublic('/docs/json') // true
 * isPublic('/healthz') // false
 */
export function publicPathMatcher(
  entries: readonly string[],
): (path: string, matching?: PathMatching) => boolean {
  if (entries.length === 0) return () => false
  const patterns = entries.map(compile)
  return (path, matching = {}) => {
    // One trailing slash is the same route to Express (unless strict); `/` itself has no segments.
    const slash = path.length > 1 && path.endsWith('/')
    const trimmed = slash ? path.slice(0, -1) : path
    const segments = trimmed === '/' ? [] : trimmed.split('/').slice(1)
    return patterns.some((pattern) => matches(pattern, segments, slash, matching))
  }
}
