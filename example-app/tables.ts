/**
 * The forum's tables as TypeScript sees them: the `Database` interface shape Kysely uses, written
 * by hand from the migrations (`migrations/001.do.create-forum.sql`, `002.do.add-invite-codes.sql`). `policies.ts` is typed by it (a policy on a
 * table that is not here is a compile error) and the thread list's Kysely query checks its table
 * and column names against it.
 */
import type { Generated } from 'kysely'

export interface DB {
  groups: {
    id: Generated<string>
    name: string
    /** keyhole's ciphertext of the invite code (decrypted by keyhole on read); null: none yet. */
    invite_code: string | null
  }
  discussion_threads: {
    id: Generated<string>
    group_id: string
    title: string
    created_by: string
    created_at: Generated<Date>
  }
  posts: {
    id: Generated<string>
    thread_id: string
    content: string
    author: string
    created_at: Generated<Date>
  }
}
