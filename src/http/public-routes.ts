/**
 * Which routes need no token. Matched against the route as registered (Fastify's
 * `routeOptions.url`, Express's `route.path`), never the raw request URL, so encodings, dot
 * segments or a query string cannot make a protected route look public.
 */

/** A matcher over route patterns: exact entries, and `/prefix/*` entries for a whole subtree. */
export function publicRouteMatcher(
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
