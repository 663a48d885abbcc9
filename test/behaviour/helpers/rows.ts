/**
 * The HTTP behaviour both adapters must show, as data: who calls (a token, or how it is broken),
 * what they ask, and what they must get back — status, code, `WWW-Authenticate`, body, and what
 * the database holds afterwards. Every row runs against the Fastify app and the Express app
 * (apps.ts), so the two cannot drift.
 */

/** A caller: a valid token with these permissions, or a malformed Authorization header. */
export type Caller =
  | {
      readonly sub: string
      readonly permissions: readonly { group: 'A' | 'B' | 'X'; role: string }[]
      /** The token's `scope` claim (`scp` with an array). */
      readonly scope?: string | readonly string[]
    }
  | { readonly header: string }
  | {
      readonly token:
        | 'wrong-key'
        | 'expired'
        | 'wrong-audience'
        | 'alg-none'
        | 'bad-permissions'
        | 'bad-scope'
        | 'ten-years'
        | 'id-token'
    }
  | undefined

export const member: Caller = { sub: 'alice', permissions: [{ group: 'A', role: 'member' }] }
export const moderator: Caller = { sub: 'molly', permissions: [{ group: 'A', role: 'moderator' }] }
export const admin: Caller = { sub: 'root', permissions: [{ group: 'X', role: 'admin' }] }
export const stranger: Caller = { sub: 'eve', permissions: [{ group: 'B', role: 'member' }] }
export const nobody: Caller = { sub: 'nobody', permissions: [] }

export interface Row {
  readonly name: string
  readonly caller: Caller
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'OPTIONS'
  /**
   * `:A`, `:B` are group A's and B's IDs; `:noteA` a fresh note of group A, `:noteB` of B (in the
   * path, or as a body value: its id).
   */
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: Readonly<Record<string, unknown>>
  readonly expect: {
    readonly status: number
    /** For refusals: the body is `{ statusCode, error, message, code }` with this code. */
    readonly code?: string
    /** The exact `WWW-Authenticate`, or `null` for none. */
    readonly challenge?: string | null
    /** The exact JSON body of a success. */
    readonly json?: unknown
    /** How the notes table changed: rows added (+1), removed (-1), or the renamed body. */
    readonly notes?: { readonly added?: number; readonly renamedTo?: string | null }
  }
}

const realm = 'Bearer realm="keyhole"'
const invalidToken = (description: string) =>
  `${realm}, error="invalid_token", error_description="${description}"`
const insufficientScope = `${realm}, error="insufficient_scope", error_description="Insufficient role"`
const missingScope = (scope: string) =>
  `${realm}, error="insufficient_scope", error_description="Insufficient scope", scope="${scope}"`
const writer: Caller = { ...member, scope: 'notes:read notes:write' }
const reader: Caller = { ...member, scope: 'notes:read' }

export const tokenRows: Row[] = [
  {
    name: 'no token → 401 KH_TOKEN_MISSING, a challenge without error=',
    caller: undefined,
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_MISSING', challenge: realm },
  },
  {
    name: 'a valid token → the capability',
    caller: member,
    method: 'GET',
    path: '/me',
    expect: { status: 200, json: { subject: 'alice', isAdmin: false } },
  },
  {
    name: 'an admin entry anywhere → admin everywhere',
    caller: admin,
    method: 'GET',
    path: '/me',
    expect: { status: 200, json: { subject: 'root', isAdmin: true } },
  },
  {
    name: '"bearer" in lower case is accepted',
    caller: { header: 'bearer <token>' },
    method: 'GET',
    path: '/me',
    expect: { status: 200, json: { subject: 'alice', isAdmin: false } },
  },
  {
    name: 'Basic credentials carry no bearer token → 401 KH_TOKEN_MISSING',
    caller: { header: 'Basic YWxpY2U6c2VjcmV0' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_MISSING', challenge: realm },
  },
  {
    name: '"Bearer" alone → 401 KH_TOKEN_MALFORMED',
    caller: { header: 'Bearer' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_MALFORMED' },
  },
  {
    name: 'two segments → 401 KH_TOKEN_MALFORMED',
    caller: { header: 'Bearer abc.def' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_MALFORMED' },
  },
  {
    name: 'signed with another key → 401 KH_TOKEN_SIGNATURE',
    caller: { token: 'wrong-key' },
    method: 'GET',
    path: '/me',
    expect: {
      status: 401,
      code: 'KH_TOKEN_SIGNATURE',
      challenge: invalidToken('The access token signature is invalid'),
    },
  },
  {
    name: 'expired → 401 KH_TOKEN_EXPIRED',
    caller: { token: 'expired' },
    method: 'GET',
    path: '/me',
    expect: {
      status: 401,
      code: 'KH_TOKEN_EXPIRED',
      challenge: invalidToken('The access token expired'),
    },
  },
  {
    name: 'for another audience → 401 KH_TOKEN_CLAIM',
    caller: { token: 'wrong-audience' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_CLAIM' },
  },
  {
    name: 'claiming ten years (exp - iat beyond maxTokenLifetime, a day) → 401 KH_TOKEN_CLAIM',
    caller: { token: 'ten-years' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_CLAIM' },
  },
  {
    name: 'an ID token (at_hash) for this audience → 401 KH_TOKEN_CLAIM',
    caller: { token: 'id-token' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_CLAIM' },
  },
  {
    name: 'alg none (an empty signature) → 401 KH_TOKEN_MALFORMED, before any crypto',
    caller: { token: 'alg-none' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_MALFORMED' },
  },
  {
    name: 'permissions of the wrong shape → 401 KH_TOKEN_PERMISSIONS',
    caller: { token: 'bad-permissions' },
    method: 'GET',
    path: '/me',
    expect: { status: 401, code: 'KH_TOKEN_PERMISSIONS' },
  },
]

export const routeRows: Row[] = [
  {
    name: 'a public route needs no token',
    caller: undefined,
    method: 'GET',
    path: '/health',
    expect: { status: 200, json: { status: 'ok' }, challenge: null },
  },
  {
    name: 'below a public route is not public',
    caller: undefined,
    method: 'GET',
    path: '/health/x',
    expect: { status: 401, code: 'KH_TOKEN_MISSING' },
  },
  {
    name: 'a longer name is not the public route',
    caller: undefined,
    method: 'GET',
    path: '/healthz',
    expect: { status: 401, code: 'KH_TOKEN_MISSING' },
  },
  {
    name: 'an unknown path needs a token too (routes cannot be probed)',
    caller: undefined,
    method: 'GET',
    path: '/admin/secrets',
    expect: { status: 401, code: 'KH_TOKEN_MISSING' },
  },
  {
    name: 'a CORS preflight without a token is refused like any request (CORS plugins answer first)',
    caller: undefined,
    method: 'OPTIONS',
    path: '/nowhere',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    expect: { status: 401, code: 'KH_TOKEN_MISSING' },
  },
  {
    name: 'requireRole: a member is refused a moderator route → 403 insufficient_scope',
    caller: member,
    method: 'GET',
    path: '/mod',
    expect: { status: 403, code: 'KH_FORBIDDEN', challenge: insufficientScope },
  },
  {
    name: 'requireRole: a moderator passes',
    caller: moderator,
    method: 'GET',
    path: '/mod',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: 'requireRole: an admin passes',
    caller: admin,
    method: 'GET',
    path: '/mod',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: 'requireRole: no permissions → 403',
    caller: nobody,
    method: 'GET',
    path: '/mod',
    expect: { status: 403, code: 'KH_FORBIDDEN' },
  },
  {
    name: 'requireRole in a group: its moderator passes',
    caller: moderator,
    method: 'GET',
    path: '/groups/:A/mod',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: "requireRole in a group: another group's moderator → 403",
    caller: moderator,
    method: 'GET',
    path: '/groups/:B/mod',
    expect: { status: 403, code: 'KH_FORBIDDEN', challenge: insufficientScope },
  },
  {
    name: 'requireRole in a group: an admin passes in any group',
    caller: admin,
    method: 'GET',
    path: '/groups/:B/mod',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: 'requireRole in a group: a group ID of the wrong type → 400 KH_BAD_REQUEST',
    caller: moderator,
    method: 'GET',
    path: "/groups/1';--/mod",
    expect: { status: 400, code: 'KH_BAD_REQUEST', challenge: null },
  },
  {
    name: 'requireScope: the scope in a scope string → passes',
    caller: writer,
    method: 'GET',
    path: '/scoped',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: 'requireScope: the scope in an scp list → passes',
    caller: { ...member, scope: ['notes:write'] },
    method: 'GET',
    path: '/scoped',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: 'requireScope: another scope → 403 KH_INSUFFICIENT_SCOPE, the scope in the challenge',
    caller: reader,
    method: 'GET',
    path: '/scoped',
    expect: { status: 403, code: 'KH_INSUFFICIENT_SCOPE', challenge: missingScope('notes:write') },
  },
  {
    name: 'requireScope: no scope claim → 403, even for an admin',
    caller: admin,
    method: 'GET',
    path: '/scoped',
    expect: { status: 403, code: 'KH_INSUFFICIENT_SCOPE', challenge: missingScope('notes:write') },
  },
  {
    name: 'requireScope without a token → 401',
    caller: undefined,
    method: 'GET',
    path: '/scoped',
    expect: { status: 401, code: 'KH_TOKEN_MISSING', challenge: realm },
  },
  {
    name: 'requireScope: a malformed scope claim → 401 KH_TOKEN_SCOPE',
    caller: { token: 'bad-scope' },
    method: 'GET',
    path: '/scoped',
    expect: {
      status: 401,
      code: 'KH_TOKEN_SCOPE',
      challenge: invalidToken('The access token scopes are invalid'),
    },
  },
  {
    name: 'requireScope and requireRole: the scope and the role in the group → passes',
    caller: { ...moderator, scope: 'notes:write' },
    method: 'GET',
    path: '/groups/:A/scoped-mod',
    expect: { status: 200, json: { ok: true } },
  },
  {
    name: 'requireScope and requireRole: the scope without the role → 403 KH_FORBIDDEN',
    caller: writer,
    method: 'GET',
    path: '/groups/:A/scoped-mod',
    expect: { status: 403, code: 'KH_FORBIDDEN', challenge: insufficientScope },
  },
  {
    name: 'requireScope and requireRole: the role without the scope → 403 KH_INSUFFICIENT_SCOPE',
    caller: moderator,
    method: 'GET',
    path: '/groups/:A/scoped-mod',
    expect: { status: 403, code: 'KH_INSUFFICIENT_SCOPE', challenge: missingScope('notes:write') },
  },
  {
    name: 'requireRole without a token → 401',
    caller: undefined,
    method: 'GET',
    path: '/mod',
    expect: { status: 401, code: 'KH_TOKEN_MISSING', challenge: realm },
  },
]

export const databaseRows: Row[] = [
  {
    name: "read: a member sees their group's notes only",
    caller: member,
    method: 'GET',
    path: '/notes',
    expect: { status: 200, json: ['a'] },
  },
  {
    name: 'read: an admin sees every group',
    caller: admin,
    method: 'GET',
    path: '/notes',
    expect: { status: 200, json: ['a', 'b'] },
  },
  {
    name: 'read: no permissions, no rows (not an error)',
    caller: nobody,
    method: 'GET',
    path: '/notes',
    expect: { status: 200, json: [] },
  },
  {
    name: 'insert: a member writes into their group → 201',
    caller: member,
    method: 'POST',
    path: '/notes',
    body: { group: ':A', body: 'new' },
    expect: { status: 201, notes: { added: 1 } },
  },
  {
    name: 'insert: into a group the holder cannot see → 404 KH_NOT_FOUND, nothing written',
    caller: member,
    method: 'POST',
    path: '/notes',
    body: { group: ':B', body: 'intrusion' },
    expect: { status: 404, code: 'KH_NOT_FOUND', notes: { added: 0 } },
  },
  {
    name: 'insert: no permissions → 404, nothing written',
    caller: nobody,
    method: 'POST',
    path: '/notes',
    body: { group: ':A', body: 'intrusion' },
    expect: { status: 404, code: 'KH_NOT_FOUND', notes: { added: 0 } },
  },
  {
    name: 'insert: a client-chosen id of a note it cannot see → 400 KH_BAD_REQUEST, not 409',
    caller: member,
    method: 'POST',
    path: '/notes',
    body: { id: ':noteB', group: ':A', body: 'mine' },
    expect: { status: 400, code: 'KH_BAD_REQUEST', notes: { added: 0 } },
  },
  {
    name: 'insert: an unused client-chosen id → the same 400 (the answer tells nothing)',
    caller: member,
    method: 'POST',
    path: '/notes',
    body: { id: 999_999, group: ':A', body: 'mine' },
    expect: { status: 400, code: 'KH_BAD_REQUEST', notes: { added: 0 } },
  },
  {
    name: 'insert: a group ID of the wrong type → 400, nothing written',
    caller: member,
    method: 'POST',
    path: '/notes',
    body: { group: "1'); DROP TABLE notes; --", body: 'x' },
    expect: { status: 400, code: 'KH_BAD_REQUEST', notes: { added: 0 } },
  },
  {
    name: 'update: a moderator renames a note of their group',
    caller: moderator,
    method: 'PATCH',
    path: '/notes/:noteA',
    body: { body: 'renamed' },
    expect: { status: 200, notes: { renamedTo: 'renamed' } },
  },
  {
    name: 'update: a member may read it but not change it → 403, unchanged',
    caller: member,
    method: 'PATCH',
    path: '/notes/:noteA',
    body: { body: 'renamed' },
    expect: { status: 403, code: 'KH_CAPABILITY_DENIED', notes: { renamedTo: null } },
  },
  {
    name: "update: another group's note is not found → 404, unchanged",
    caller: moderator,
    method: 'PATCH',
    path: '/notes/:noteB',
    body: { body: 'renamed' },
    expect: { status: 404, code: 'KH_NOT_FOUND', notes: { renamedTo: null } },
  },
  {
    name: 'delete: a moderator deletes a note of their group → 204',
    caller: moderator,
    method: 'DELETE',
    path: '/notes/:noteA',
    expect: { status: 204, notes: { added: -1 } },
  },
  {
    name: 'delete: an empty body sent as JSON is no body → 204',
    caller: moderator,
    method: 'DELETE',
    path: '/notes/:noteA',
    headers: { 'content-type': 'application/json' },
    expect: { status: 204, notes: { added: -1 } },
  },
  {
    name: 'delete: a member → 403, nothing deleted',
    caller: member,
    method: 'DELETE',
    path: '/notes/:noteA',
    expect: { status: 403, code: 'KH_CAPABILITY_DENIED', notes: { added: 0 } },
  },
  {
    name: "delete: another group's note → 404, nothing deleted",
    caller: moderator,
    method: 'DELETE',
    path: '/notes/:noteB',
    expect: { status: 404, code: 'KH_NOT_FOUND', notes: { added: 0 } },
  },
  {
    name: 'delete: an admin deletes anywhere → 204',
    caller: admin,
    method: 'DELETE',
    path: '/notes/:noteB',
    expect: { status: 204, notes: { added: -1 } },
  },
  {
    name: 'a note that does not exist → 404',
    caller: admin,
    method: 'DELETE',
    path: '/notes/999999',
    expect: { status: 404, code: 'KH_NOT_FOUND', notes: { added: 0 } },
  },
]

export const rows: readonly Row[] = [...tokenRows, ...routeRows, ...databaseRows]
