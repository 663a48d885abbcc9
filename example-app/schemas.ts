/**
 * The JSON schemas of the forum's HTTP contract. The same objects validate requests (Fastify/Ajv)
 * and describe the API at /docs (@fastify/swagger), so the documentation cannot drift from what is
 * enforced. Every body refuses unknown fields; every path ID must be a UUID.
 */

// Canonical lower-case UUIDs only: Ajv's `uuid` format alone also admits `urn:uuid:` prefixes and
// upper case, which PostgreSQL would refuse or the token's canonical group IDs would not match.
const uuid = {
  type: 'string',
  format: 'uuid',
  pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
} as const

/** `{ statusCode, error, message, code }`: every error the forum answers with. */
export const errorSchema = {
  $id: 'Error',
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' },
    code: { type: 'string' },
  },
  required: ['statusCode', 'error', 'message', 'code'],
} as const

/** An invite code: 12 random bytes as 16 characters of base64url, made by the server. */
const inviteCode = {
  type: 'string',
  pattern: '^[A-Za-z0-9_-]{16}$',
  description: '12 random bytes as base64url, made by the server',
} as const

/** A group; `inviteCode` only for its moderators and admins (null: the group has none yet). */
export const groupSchema = {
  $id: 'Group',
  type: 'object',
  properties: {
    id: uuid,
    name: { type: 'string' },
    inviteCode: {
      type: ['string', 'null'],
      pattern: inviteCode.pattern,
      description:
        "For the group's moderators and admins only; null for a group created before invite codes",
    },
  },
  required: ['id', 'name'],
} as const

export const threadSchema = {
  $id: 'Thread',
  type: 'object',
  properties: {
    id: uuid,
    title: { type: 'string' },
    group_id: uuid,
    created_by: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'title', 'group_id', 'created_by', 'created_at'],
} as const

export const postSchema = {
  $id: 'Post',
  type: 'object',
  properties: {
    id: uuid,
    content: { type: 'string' },
    thread_id: uuid,
    author: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'content', 'thread_id', 'author', 'created_at'],
} as const

/** A thread in a group's list: the thread, its number of posts and when the latest was written. */
export const threadInListSchema = {
  $id: 'ThreadInList',
  type: 'object',
  properties: {
    ...threadSchema.properties,
    postCount: { type: 'integer', minimum: 0 },
    lastPostAt: {
      type: ['string', 'null'],
      format: 'date-time',
      description: 'The latest post, or null without posts',
    },
  },
  required: [...threadSchema.required, 'postCount', 'lastPostAt'],
} as const

/** Shared schemas, registered with `fastify.addSchema` and referenced as `Name#`. */
export const sharedSchemas = [
  errorSchema,
  groupSchema,
  threadSchema,
  threadInListSchema,
  postSchema,
] as const

function body<K extends string>(field: K, maxLength: number) {
  return {
    type: 'object',
    properties: { [field]: { type: 'string', minLength: 1, maxLength } } as Record<
      K,
      { type: 'string'; minLength: 1; maxLength: number }
    >,
    required: [field],
    additionalProperties: false,
  } as const
}

function params<K extends string>(name: K) {
  return {
    type: 'object',
    properties: { [name]: uuid } as Record<K, typeof uuid>,
    required: [name],
    additionalProperties: false,
  } as const
}

const ref = (name: string) => ({ $ref: `${name}#` })

/** The error responses a route documents, by status. */
function errors(...statuses: number[]) {
  return Object.fromEntries(statuses.map((status) => [status, ref('Error')]))
}

const bearer = [{ bearerAuth: [] }]

export const createGroup = {
  tags: ['groups'],
  summary: 'Create a group, with a new invite code (admin)',
  security: bearer,
  body: body('name', 100),
  response: {
    201: {
      type: 'object',
      properties: { id: uuid, name: { type: 'string' }, inviteCode },
      required: ['id', 'name', 'inviteCode'],
    },
    ...errors(400, 401, 403),
  },
} as const

export const getGroup = {
  tags: ['groups'],
  summary:
    'Read a group (member or higher of the group, admin); its invite code for moderators and admins',
  security: bearer,
  params: params('groupId'),
  response: { 200: ref('Group'), ...errors(400, 401, 404) },
} as const

export const newInviteCode = {
  tags: ['groups'],
  summary: "Replace a group's invite code with a new one (moderator or higher of the group, admin)",
  security: bearer,
  params: params('groupId'),
  response: {
    200: { type: 'object', properties: { inviteCode }, required: ['inviteCode'] },
    ...errors(400, 401, 403, 404),
  },
} as const

export const listThreads = {
  tags: ['threads'],
  summary: "List a group's threads, newest first (member or higher of the group, admin)",
  security: bearer,
  params: params('groupId'),
  // Query strings are text, and nothing is coerced: `limit` is checked by its pattern.
  querystring: {
    type: 'object',
    properties: {
      limit: {
        type: 'string',
        pattern: '^(?:[1-9][0-9]?|100)$',
        description: 'How many threads, 1 to 100; default 50',
      },
      after: {
        ...uuid,
        description:
          'A thread of this list (the last of the previous page): the threads after it, newest first',
      },
      q: {
        type: 'string',
        maxLength: 200,
        description: 'Only threads whose title contains this text (any case; % and _ literal)',
      },
    },
  },
  response: { 200: { type: 'array', items: ref('ThreadInList') }, ...errors(400, 401, 403) },
} as const

export const createThread = {
  tags: ['threads'],
  summary: 'Start a thread in a group (member or higher of the group, admin)',
  security: bearer,
  params: params('groupId'),
  body: body('title', 200),
  response: { 201: ref('Thread'), ...errors(400, 401, 403, 404) },
} as const

export const getThread = {
  tags: ['threads'],
  summary: 'Read a thread (member or higher of its group, admin)',
  security: bearer,
  params: params('threadId'),
  response: { 200: ref('Thread'), ...errors(400, 401, 404) },
} as const

export const updateThread = {
  tags: ['threads'],
  summary: "Rename a thread (its author while a member, its group's moderators, admin)",
  security: bearer,
  params: params('threadId'),
  body: body('title', 200),
  response: { 200: ref('Thread'), ...errors(400, 401, 403, 404) },
} as const

export const deleteThread = {
  tags: ['threads'],
  summary: "Delete a thread and its posts (its group's moderators, admin)",
  security: bearer,
  params: params('threadId'),
  response: { 204: { type: 'null' }, ...errors(400, 401, 403, 404) },
} as const

export const listPosts = {
  tags: ['posts'],
  summary: "List a thread's posts, oldest first (member or higher of its group, admin)",
  security: bearer,
  params: params('threadId'),
  response: { 200: { type: 'array', items: ref('Post') }, ...errors(400, 401, 404) },
} as const

export const createPost = {
  tags: ['posts'],
  summary: 'Post in a thread (member or higher of its group, admin)',
  security: bearer,
  params: params('threadId'),
  body: body('content', 10_000),
  response: { 201: ref('Post'), ...errors(400, 401, 404) },
} as const

export const deletePost = {
  tags: ['posts'],
  summary: "Delete a post (its thread's group's moderators, admin)",
  security: bearer,
  params: params('postId'),
  response: { 204: { type: 'null' }, ...errors(400, 401, 403, 404) },
} as const

export const health = {
  tags: ['health'],
  summary: 'Liveness and database-security status (public)',
  response: {
    200: {
      type: 'object',
      properties: { status: { type: 'string', enum: ['ok'] } },
      required: ['status'],
    },
    503: ref('Error'),
  },
} as const
