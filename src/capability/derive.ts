/**
 * Claims → capability. `resolveCapabilityOptions` runs once, at registration; `deriveCapability`
 * runs per request and is a pure function of the verified payload and those options.
 */
import { z } from 'zod'
import type { Capability, GroupIdType } from './capability.ts'
import { ConfigurationError, TokenError } from '../errors.ts'
import { MAX_FIELD, permissionsSchema, type PermissionsSchema } from './claim-schema.ts'
import { createCapability } from './create-capability.ts'
import { parseGroupId } from './group-id.ts'
import { createRoleHierarchy, type RoleHierarchy } from './role-hierarchy.ts'
import { scopesOf } from './scope-claim.ts'

/** How the capability is read from the token. */
export interface CapabilityOptions {
  /**
   * The top-level claim holding the list of `{ group, role }` (a name, not a path; namespaced
   * names such as `https://example.com/permissions` work). A token without it is authenticated
   * but in no group; a malformed one is refused (401).
   * @default 'permissions'
   */
  claim?: string
  /**
   * The top-level claim holding the subject (the user ID); the original design used `id`. It must
   * be a non-empty string (at most 256 characters, no control characters) or a non-negative safe
   * integer; otherwise the token is refused (401 `KH_TOKEN_CLAIM`).
   * @default 'sub'
   */
  subjectClaim?: string
  /**
   * The type of group IDs, in the claim and in the database (the SQL cast of the bound array).
   * Anything else in a claim makes the token invalid: with `uuid`, `"1,3"` or `"1);--"` never
   * reach SQL; with `bigint`, a JSON number above 2^53 (which has silently become another ID) is
   * refused, and IDs are never negative. `text` allows 1–128 characters of `[A-Za-z0-9_.:-]`.
   * @default 'uuid'
   */
  groupIdType?: GroupIdType
  /**
   * The most entries a permissions claim may hold (1 to 1 000 000); more makes the token invalid
   * (401), checked before any entry is read.
   * @default 10000
   */
  maxPermissions?: number
  /**
   * The role hierarchy, lowest first (1 to 32 unique names of `[A-Za-z0-9_-]`): a holder of a role
   * has every lower one in the same group. Role names are exact (case-sensitive); names outside
   * the list grant nothing.
   * @default ['member', 'moderator', 'admin']
   */
  roles?: readonly string[]
  /**
   * The role that makes its holder admin everywhere, whichever group it is granted in; roles above
   * it in the hierarchy do too. Must be one of `roles`.
   * @default the last of `roles`
   */
  adminRole?: string
}

// Any top-level claim name, including namespaced ones such as Auth0's
// `https://example.com/permissions`; it is read with `Object.hasOwn`, never as a path. Names that
// only mean something on a prototype are refused: they can only be a mistake.
const claimName = z
  .string()
  .min(1)
  .max(256)
  .refine((name) => !/[\u0000-\u001f\u007f]/.test(name), 'must not contain control characters')
  .refine(
    (name) => !['__proto__', 'constructor', 'prototype'].includes(name),
    'must not be __proto__, constructor or prototype',
  )

/** The zod schema of {@link CapabilityOptions}: strict (unknown keys are refused). */
export const capabilityOptionsSchema = z
  .object({
    claim: claimName.optional(),
    subjectClaim: claimName.optional(),
    groupIdType: z.enum(['uuid', 'bigint', 'integer', 'text']).optional(),
    maxPermissions: z.number().int().positive().max(1_000_000).optional(),
    roles: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/, 'must be a role name like member'))
      .min(1)
      .max(32)
      .refine((roles) => new Set(roles).size === roles.length, 'role names must be unique')
      .optional(),
    adminRole: z.string().optional(),
  })
  .strict() satisfies z.ZodType<CapabilityOptions>

/** {@link CapabilityOptions} with every default filled in; frozen. */
export interface ResolvedCapabilityOptions {
  readonly claim: string
  readonly subjectClaim: string
  readonly groupIdType: GroupIdType
  readonly maxPermissions: number
  readonly hierarchy: RoleHierarchy
}

const DEFAULT_ROLES: readonly string[] = ['member', 'moderator', 'admin']

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length > 0 ? `.${issue.path.join('.')}` : ''
  return `capability${path}: ${issue.message}`
}

function invalid(message: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message, cause)
}

/**
 * Validates the options, fills in the defaults and freezes the result. Runs once, at registration;
 * the caller's object is never mutated.
 *
 * @throws ConfigurationError `KH_INVALID_OPTIONS`, its message naming the bad option
 *   (e.g. `capability.adminRole: "root" is not one of capability.roles`).
 * @example
 * const options = resolveCapabilityOptions({ groupIdType: 'bigint', subjectClaim: 'id' })
 */
export function resolveCapabilityOptions(
  options: CapabilityOptions = {},
): ResolvedCapabilityOptions {
  const parsed = capabilityOptionsSchema.safeParse(options)
  if (!parsed.success) {
    throw invalid(parsed.error.issues.map(describeIssue).join('; '), parsed.error)
  }
  const { data } = parsed
  const roles = data.roles ?? DEFAULT_ROLES
  const adminRole = data.adminRole ?? (roles.at(-1) as string)
  if (!roles.includes(adminRole)) {
    throw invalid(
      `capability.adminRole: ${JSON.stringify(adminRole)} is not one of capability.roles`,
    )
  }
  const claim = data.claim ?? 'permissions'
  const subjectClaim = data.subjectClaim ?? 'sub'
  if (claim === subjectClaim) {
    throw invalid(`capability.claim and capability.subjectClaim both name ${JSON.stringify(claim)}`)
  }
  return Object.freeze({
    claim,
    subjectClaim,
    groupIdType: data.groupIdType ?? 'uuid',
    maxPermissions: data.maxPermissions ?? 10_000,
    hierarchy: createRoleHierarchy(roles, adminRole),
  })
}

// One schema per resolved options object, built on first use (a WeakMap rather than a field, so
// the resolved options stay a plain frozen record).
const schemas = new WeakMap<ResolvedCapabilityOptions, PermissionsSchema>()

function schemaFor(options: ResolvedCapabilityOptions): PermissionsSchema {
  let schema = schemas.get(options)
  if (schema === undefined) {
    schema = permissionsSchema(options.maxPermissions)
    schemas.set(options, schema)
  }
  return schema
}

const MAX_SUBJECT = 256
// The subject is logged and bound to SQL: control characters have no business there, and
// PostgreSQL refuses a NUL byte in text (a 500 instead of a 401).
const CONTROL = /[\u0000-\u001f\u007f]/

function subjectOf(payload: Readonly<Record<string, unknown>>, claim: string): string {
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined
  if (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_SUBJECT &&
    !CONTROL.test(value)
  ) {
    return value
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value)
  throw new TokenError('KH_TOKEN_CLAIM', { message: 'The access token has no valid subject' })
}

/**
 * Derives the capability from a verified payload: a pure function of the payload and the options.
 *
 * - The subject is the `subjectClaim` claim: a non-empty string of at most 256 characters without
 *   control characters, or a non-negative safe integer (read as its decimal string). Anything
 *   else, or none, throws `TokenError('KH_TOKEN_CLAIM')` (401).
 * - An absent permissions claim is a holder with no groups (still authenticated). A present but
 *   malformed one (not a list, an entry without a string `role`, a group that is not an ID of the
 *   configured type, more than `maxPermissions` entries) throws `TokenError('KH_TOKEN_PERMISSIONS')`
 *   (401); the cause says which entry, never its value.
 * - Entries with a role outside the hierarchy (names are exact: `Admin` is not `admin`) grant
 *   nothing and are counted in `ignored`, for the log. Duplicates collapse into one group.
 * - An entry with the admin role (or one above it) in any group makes the holder admin everywhere.
 * - The scopes are the `scope` claim (a space-separated string) or the `scp` claim (a list, or a
 *   space-separated string); a malformed one, or both, throws `TokenError('KH_TOKEN_SCOPE')` (401).
 *
 * Linear in the number of entries; 10 000 entries derive in a few milliseconds.
 *
 * @example
 * const options = resolveCapabilityOptions()
 * const { capability, ignored } = deriveCapability(payload, options)
 * capability.groups('moderator') // the groups where the holder is moderator or admin
 */
export function deriveCapability(
  payload: Readonly<Record<string, unknown>>,
  options: ResolvedCapabilityOptions,
): { capability: Capability; ignored: number } {
  const subject = subjectOf(payload, options.subjectClaim)
  const scopes = scopesOf(payload)
  const { claim, hierarchy, groupIdType } = options
  const raw = Object.hasOwn(payload, claim) ? payload[claim] : undefined
  const topRank = new Map<string, number>()
  let ignored = 0
  let isAdmin = false
  if (raw !== undefined) {
    // Read in one pass, without copying the claim: each check is one the schema makes (or a
    // stricter one) or the group-ID and own-key checks that follow it. The first entry that fails
    // any of them refuses the token, the schema naming the fault when it has one (see `refused`).
    if (!Array.isArray(raw) || raw.length > options.maxPermissions) {
      throw refused(raw, options, `${claim} is not a list of at most ${options.maxPermissions}`)
    }
    const entries: readonly unknown[] = raw
    for (let index = 0; index < entries.length; index++) {
      const entry = entries[index]
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw refused(raw, options, `${claim}[${index}] is not an object`)
      }
      // Only the entry's own keys count: on a polluted Object.prototype an entry without a role
      // would otherwise inherit one (zod reads keys with `entry[key]`).
      if (!Object.hasOwn(entry, 'group') || !Object.hasOwn(entry, 'role')) {
        throw refused(raw, options, `${claim}[${index}] lacks its own group or role`)
      }
      const { group, role } = entry as { group: unknown; role: unknown }
      if (typeof role !== 'string' || role.length > MAX_FIELD) {
        throw refused(raw, options, `${claim}[${index}].role is not a string`)
      }
      // Any ID `parseGroupId` accepts is a string of at most 128 characters or a finite number,
      // as the schema requires.
      const id = parseGroupId(groupIdType, group)
      if (id === undefined) {
        throw refused(raw, options, `${claim}[${index}].group is not a ${groupIdType} group ID`)
      }
      const rank = hierarchy.rank(role)
      if (rank === undefined) {
        ignored++
        continue
      }
      if (rank >= hierarchy.adminRank) isAdmin = true
      const known = topRank.get(id)
      if (known === undefined || rank > known) topRank.set(id, rank)
    }
  }
  const exp = payload.exp
  const capability = createCapability({
    subject,
    hierarchy,
    groupIdType,
    expiresAt: typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined,
    isAdmin,
    scopes,
    topRank,
  })
  return { capability, ignored }
}

/**
 * The error refusing a permissions claim that failed a check at derivation. The schema, run over
 * the whole claim, names the fault when it has one (as it did when it read every claim first);
 * otherwise the claim is well-formed and `fault` (an own-key or group-ID check) says what failed.
 */
function refused(raw: unknown, options: ResolvedCapabilityOptions, fault: string): TokenError {
  const parsed = schemaFor(options).safeParse(raw)
  return new TokenError('KH_TOKEN_PERMISSIONS', {
    cause: parsed.success ? new Error(fault) : parsed.error,
  })
}
