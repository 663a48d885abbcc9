/**
 * Names for the texts keyhole runs as prepared statements on the application's behalf (its
 * Kysely queries, its `sql`…`` statements): a prefix and a hash of the text, so one text is parsed
 * and planned once per connection, and PostgreSQL may keep a generic plan (planning a statement
 * under RLS policies costs more than running it, for a short one). Only the first
 * {@link PREPARED_TEXTS} texts of the process get a name: a text that varies from call to call
 * (an IN list of varying length) runs unnamed, so connections do not fill with statements used
 * once. Each namer has its own budget.
 */
import { createHash } from 'node:crypto'

/** How many texts one namer names. */
export const PREPARED_TEXTS = 200

/** A namer: `text` → `<prefix><32 hex digits of its SHA-256>`, or undefined past the budget. */
export function statementNamer(prefix: string): (text: string) => string | undefined {
  const names = new Map<string, string>()
  return (text) => {
    let name = names.get(text)
    if (name === undefined && names.size < PREPARED_TEXTS) {
      name = `${prefix}${createHash('sha256').update(text).digest('hex').slice(0, 32)}`
      names.set(text, name)
    }
    return name
  }
}
