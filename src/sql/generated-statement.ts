/**
 * Marks the statements keyhole generates itself. Their text is keyhole's, their inputs are bind
 * parameters: they cannot leave anything in the session of a pooled connection, so a request made
 * only of them skips `keyhole.reset_session()`. Any other statement (the application's own SQL,
 * where an injection could hide) makes the request end with it.
 */
export const kGenerated: unique symbol = Symbol('keyhole.generated')

/** Whether `query` carries keyhole's mark (a string, or a config without it, does not). */
export function isGenerated(query: unknown): boolean {
  return typeof query === 'object' && query !== null && kGenerated in query
}
