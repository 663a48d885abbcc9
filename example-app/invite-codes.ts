/**
 * Invite codes: made by the server only, 12 random bytes (96 bits) from `node:crypto` as 16
 * characters of base64url (`A-Z a-z 0-9 - _`). keyhole encrypts each before it reaches the
 * database (policies.ts: `encrypted: ['invite_code']`) and decrypts it for the callers the column
 * rules let read it: the group's moderators and admins.
 */
import { randomBytes } from 'node:crypto'

export function newInviteCode(): string {
  return randomBytes(12).toString('base64url')
}

/**
 * A group row as the API answers it: `inviteCode` when the row carries the column, which the column
 * rules give only to those who may read it.
 */
export function groupView(row: Readonly<Record<string, unknown>>) {
  const { id, name } = row as { id: string; name: string }
  return 'invite_code' in row
    ? { id, name, inviteCode: row.invite_code as string | null }
    : { id, name }
}
