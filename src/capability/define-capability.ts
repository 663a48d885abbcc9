/**
 * A capability without a token: for work outside a request (a queue worker, a cron job) that acts
 * for a known user. Built from an explicit `{ subject, groups, admin }`, validated as strictly as
 * a token's permissions (the group IDs of the configured type, canonical; the roles of the
 * hierarchy, exact), and frozen like a derived one.
 */
import { z } from 'zod'
import { ConfigurationError } from '../errors.ts'
import type { Capability } from './capability.ts'
import { createCapability } from './create-capability.ts'
import {
  resolveCapabilityOptions,
  type CapabilityOptions,
  type ResolvedCapabilityOptions,
} from './derive.ts'
import { parseGroupId } from './group-id.ts'

/** Who the work runs for, and where: the explicit form of a token's subject and permissions. */
export interface CapabilitySpec {
  /** The user the work acts for (as a token's `sub`): 1–256 characters, no control characters. */
  readonly subject: string
  /**
   * Role → the group IDs where the holder has that role (and so every lower one), e.g.
   * `{ member: [groupA], moderator: [groupB] }`. Roles must be in the hierarchy (a typo throws,
   * never grants); group IDs must be of the configured type.
   * @default {}
   */
  readonly groups?: { readonly [role: string]: readonly (string | number)[] } | undefined
  /**
   * Admin everywhere. The admin role in any group makes the holder admin too, as in a token;
   * `admin: false` beside such a group is refused as a contradiction.
   * @default false
   */
  readonly admin?: boolean | undefined
}

const CONTROL = /[\u0000-\u001f\u007f]/

const specSchema = z.strictObject({
  subject: z
    .string()
    .min(1)
    .max(256)
    .refine((s) => !CONTROL.test(s), 'must not contain control characters'),
  groups: z.record(z.string(), z.array(z.union([z.string(), z.number()]))).optional(),
  admin: z.boolean().optional(),
})

function invalid(message: string): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', `Invalid capability ${message}`)
}

/**
 * The capability of `spec` under resolved options (the adapters' and `createKeyhole`'s).
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the bad field
 */
export function capabilityFromSpec(spec: unknown, options: ResolvedCapabilityOptions): Capability {
  const parsed = specSchema.safeParse(spec)
  if (!parsed.success) {
    // zod reports at least one issue on failure; the first names the field.
    const issue = parsed.error.issues[0] as z.core.$ZodIssue
    const unknown = issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : []
    const path = [...issue.path.map(String), ...unknown].join('.')
    throw invalid(`${path === '' ? 'spec' : path}: ${issue.message}`)
  }
  const { hierarchy, groupIdType, maxPermissions } = options
  const { subject, groups = {}, admin } = parsed.data
  const topRank = new Map<string, number>()
  let isAdmin = admin === true
  let count = 0
  // The caller's own keys: zod's record would take a `__proto__` key (JSON.parse makes one) as
  // the prototype of its copy, and the role would vanish instead of being refused.
  for (const role of Object.keys((spec as CapabilitySpec).groups ?? {})) {
    const ids = groups[role] as readonly (string | number)[]
    const rank = hierarchy.rank(role)
    if (rank === undefined) {
      throw invalid(
        `groups.${role}: not a role of the hierarchy (${hierarchy.roles.map((r) => JSON.stringify(r)).join(', ')})`,
      )
    }
    if (rank >= hierarchy.adminRank && ids.length > 0) {
      if (admin === false) throw invalid(`admin: false, but groups.${role} makes the holder admin`)
      isAdmin = true
    }
    count += ids.length
    if (count > maxPermissions) throw invalid(`groups: more than ${maxPermissions} group IDs`)
    ids.forEach((value, index) => {
      const group = parseGroupId(groupIdType, value)
      if (group === undefined) {
        throw invalid(`groups.${role}[${index}]: not a ${groupIdType} group ID`)
      }
      const known = topRank.get(group)
      if (known === undefined || rank > known) topRank.set(group, rank)
    })
  }
  return createCapability({
    subject,
    hierarchy,
    groupIdType,
    expiresAt: undefined,
    isAdmin,
    topRank,
  })
}

/**
 * Builds a frozen capability from an explicit subject, groups and admin flag, as a worker or job
 * needs to act for a user without a token. The `options` are the capability options the tokens
 * are read with (`roles`, `adminRole`, `groupIdType`, …): give the same ones, or use
 * `keyhole.capability(spec)`, which has them.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming the bad field (an unknown role, a group ID
 *   of another type, a subject with control characters, an unknown key)
 * @example
 * const capability = defineCapability({ subject: 'alice', groups: { member: [groupId] } })
 * capability.has('member', groupId) // true
 */
export function defineCapability(spec: CapabilitySpec, options?: CapabilityOptions): Capability {
  return capabilityFromSpec(spec, resolveCapabilityOptions(options))
}
