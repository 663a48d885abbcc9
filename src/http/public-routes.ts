/**
 * Which Fastify routes need no token: the `public` entries matched against the route pattern as
 * registered (`routeOptions.url`), never the raw request URL, so encodings, dot segments or a query
 * string cannot make a protected route look public. (Express's middleware runs before routing and
 * matches request paths instead: see `public-paths.ts`.)
 */

/** A matcher over route patterns: exact entries, and `/prefix/*` entries for a whole subtree. */
export function publicRoutePatternMatcher(
  entries: readonly string[],
): (route: string | undefined) => boolean {
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const entry of entries) {
    if (entry.endsWith('/*')) {
      const prefix = entry.slice(0, -2)
      exact.add(prefix === '' ? '/' : prefix)
      prefixes.push(`${prefix}/`)
    } else exact.add(entry)
  }
  return (route) =>
    route !== undefined && (exact.has(route) || prefixes.some((p) => route.startsWith(p)))
}
