/**
 * Claims → capability. `resolveCapabilityOptions` runs once, at registration; `deriveCapability`
 * runs per request and is a pure function of the verified payload and those options.
 */
import { z } from 'zod'
import type { Capability, GroupIdType } from './capability.ts'
import { ConfigurationError, TokenError } from '../errors.ts'
import { permissionsSchema } from './claim-schema.ts'
import { createCapability } from './create-capability.ts'
import { parseGroupId } from './group-id.ts'
import { createRoleHierarchy, type RoleHierarchy } from './role-hierarchy.ts'

/** How the capability is read from the token. */
export interface CapabilityOptions {
  /**
   * The claim holding the list of `{ group, role }`.
   * @default 'permissions'
   */
  claim?: string
  /**
   * The claim holding the subject (the user ID). The original design used `id`.
   * @default 'sub'
   */
  subjectClaim?: string
  /**
   * The type of group IDs, in the claim and in the database (the SQL cast of the bound array).
   * Anything else in a claim makes the token invalid: with `uuid`, `"1,3"` or `"1);--"` never
   * reach SQL; with `bigint`, a JSON number above 2^53 (which has silently become another ID) is
   * refused.
   * @default 'uuid'
   */
  groupIdType?: GroupIdType
  /**
   * The most entries a `permissions` claim may hold; more makes the token invalid (401).
   * @default 10000
   */
  maxPermissions?: number
  /**
   * The role hierarchy, lowest first: a holder of a role has every lower one in the same group.
   * Role names are exact (case-sensitive); names outside the list grant nothing.
   * @default ['member', 'moderator', 'admin']
   */
  roles?: readonly string[]
  /**
   * The role that makes its holder admin everywhere, whichever group it is granted in.
   * @default the last of `roles`
   */
  adminRole?: string
}

const claimName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/)

export const capabilityOptionsSchema = z
  .object({
    claim: claimName.optional(),
    subjectClaim: claimName.optional(),
    groupIdType: z.enum(['uuid', 'bigint', 'integer', 'text']).optional(),
    maxPermissions: z.number().int().positive().max(1_000_000).optional(),
    roles: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/))
      .min(1)
      .refine((roles) => new Set(roles).size === roles.length, 'role names must be unique')
      .optional(),
    adminRole: z.string().optional(),
  })
  .strict() satisfies z.ZodType<CapabilityOptions>

export interface ResolvedCapabilityOptions {
  readonly claim: string
  readonly subjectClaim: string
  readonly groupIdType: GroupIdType
  readonly maxPermissions: number
  readonly hierarchy: RoleHierarchy
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length > 0 ? `.${issue.path.join('.')}` : ''
  return `capability${path}: ${issue.message}`
}

/** Validates and freezes the options; throws a ConfigurationError naming the bad option. */
export function resolveCapabilityOptions(
  options: CapabilityOptions = {},
): ResolvedCapabilityOptions {
  const parsed = capabilityOptionsSchema.safeParse(options)
  if (!parsed.success) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      parsed.error.issues.map(describeIssue).join('; '),
      parsed.error,
    )
  }
  const roles = parsed.data.roles ?? ['member', 'moderator', 'admin']
  const adminRole = parsed.data.adminRole ?? (roles[roles.length - 1] as string)
  if (!roles.includes(adminRole)) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      `capability.adminRole: ${JSON.stringify(adminRole)} is not one of capability.roles`,
    )
  }
  return Object.freeze({
    claim: parsed.data.claim ?? 'permissions',
    subjectClaim: parsed.data.subjectClaim ?? 'sub',
    groupIdType: parsed.data.groupIdType ?? 'uuid',
    maxPermissions: parsed.data.maxPermissions ?? 10_000,
    hierarchy: createRoleHierarchy(roles, adminRole),
  })
}

const schemas = new WeakMap<ResolvedCapabilityOptions, ReturnType<typeof permissionsSchema>>()

function schemaFor(options: ResolvedCapabilityOptions) {
  let schema = schemas.get(options)
  if (schema === undefined) {
    schema = permissionsSchema(options.maxPermissions)
    schemas.set(options, schema)
  }
  return schema
}

function subjectOf(payload: Readonly<Record<string, unknown>>, claim: string): string {
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined
  if (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= 256 &&
    !value.includes('\0')
  ) {
    return value
  }
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  throw new TokenError('KH_TOKEN_CLAIM', { message: 'The access token has no valid subject' })
}

/**
 * Derives the capability from a verified payload. An absent permissions claim is a holder with no
 * groups (still authenticated); a present but malformed one makes the token invalid. Entries with
 * role names outside the hierarchy grant nothing and are counted in `ignored`, for the log.
 *
 * @example
 * const options = resolveCapabilityOptions({ groupIdType: 'uuid' })
 * const { capability } = deriveCapability(payload, options)
 * capability.groups('moderator') // groups where the holder is moderator or admin
 */
export function deriveCapability(
  payload: Readonly<Record<string, unknown>>,
  options: ResolvedCapabilityOptions,
): { capability: Capability; ignored: number } {
  const subject = subjectOf(payload, options.subjectClaim)
  const raw = Object.hasOwn(payload, options.claim) ? payload[options.claim] : []
  const parsed = schemaFor(options).safeParse(raw)
  if (!parsed.success) {
    throw new TokenError('KH_TOKEN_PERMISSIONS', { cause: parsed.error })
  }
  const { hierarchy, groupIdType } = options
  const sets = hierarchy.roles.map(() => new Set<string>())
  const adminRank = hierarchy.rank(hierarchy.adminRole) as number
  let ignored = 0
  let isAdmin = false
  for (const entry of parsed.data) {
    const group = parseGroupId(groupIdType, entry.group)
    if (group === undefined) throw new TokenError('KH_TOKEN_PERMISSIONS')
    const rank = hierarchy.rank(entry.role)
    if (rank === undefined) {
      ignored++
      continue
    }
    if (rank >= adminRank) isAdmin = true
    for (let r = 0; r <= rank; r++) (sets[r] as Set<string>).add(group)
  }
  const exp = payload.exp
  const capability = createCapability({
    subject,
    roles: hierarchy.roles,
    groupIdType,
    expiresAt: typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined,
    isAdmin,
    groupsByRank: sets.map((s) => [...s]),
  })
  return { capability, ignored }
}
