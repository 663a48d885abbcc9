import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import fc from 'fast-check'
import {
  deriveCapability,
  resolveCapabilityOptions,
  type ResolvedCapabilityOptions,
} from '../../src/capability/derive.ts'
import type { Capability } from '../../src/capability/capability.ts'
import { permissionsSchema } from '../../src/capability/claim-schema.ts'
import { parseGroupId } from '../../src/capability/group-id.ts'

interface Entry {
  group: unknown
  role: string
}

/** Checks every property of one derivation against an independent reading of the claim. */
function holds(
  capability: Capability,
  permissions: Entry[],
  roles: readonly string[],
  adminRole: string,
  canonical: (group: unknown) => string,
): boolean {
  const rank = new Map(roles.map((role, i) => [role, i]))
  const adminRank = rank.get(adminRole) as number
  const claimed = new Set(permissions.map((p) => canonical(p.group)))
  const sets = roles.map((role) => new Set(capability.groups(role)))
  // never grants a group absent from the claims
  for (const g of sets[0] as Set<string>) if (!claimed.has(g)) return false
  // monotone: groups(lower) ⊇ groups(higher)
  for (let r = 1; r < roles.length; r++) {
    for (const g of sets[r] as Set<string>) if (!(sets[r - 1] as Set<string>).has(g)) return false
  }
  // isAdmin ⇔ an entry with the admin role or one above it
  const admin = permissions.some((p) => (rank.get(p.role) ?? -1) >= adminRank)
  if (capability.isAdmin !== admin) return false
  for (const role of roles) {
    const r = rank.get(role) as number
    // exactly the groups with that role or a higher one, deduplicated
    const expected = new Set(
      permissions.filter((p) => (rank.get(p.role) ?? -1) >= r).map((p) => canonical(p.group)),
    )
    const got = capability.groups(role)
    if (got.length !== expected.size || !got.every((g) => expected.has(g))) return false
    if (capability.binding(role).isAdmin !== admin) return false
    // has(role, g) ⇔ g ∈ groups(role) or isAdmin
    for (const g of claimed) {
      if (capability.has(role, g) !== (admin || got.includes(g))) return false
    }
    if (capability.has(role) !== (admin || got.length > 0)) return false
  }
  return true
}

const uuids = fc.uuid().chain((u) => fc.constantFrom(u.toLowerCase(), u.toUpperCase()))
const defaultRoles = fc.constantFrom('member', 'moderator', 'admin', 'Admin', 'owner', '__proto__')

t.test('uuid claims with the default hierarchy', async (t) => {
  const options = resolveCapabilityOptions()
  const entries = fc.array(fc.record({ group: uuids, role: defaultRoles }), { maxLength: 40 })
  fc.assert(
    fc.property(entries, (permissions) => {
      const { capability, ignored } = deriveCapability({ sub: 'p', permissions }, options)
      const known = permissions.filter((p) => ['member', 'moderator', 'admin'].includes(p.role))
      if (ignored !== permissions.length - known.length) return false
      return holds(capability, permissions, capability.roles, 'admin', (g) =>
        String(g).toLowerCase(),
      )
    }),
    { numRuns: 300 },
  )
  t.pass('300 random claims hold every property')
})

t.test('bigint claims mixing numbers and strings, with random hierarchies', async (t) => {
  const hierarchies = fc
    .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/), { minLength: 1, maxLength: 6 })
    .chain((roles) => fc.tuple(fc.constant(roles), fc.constantFrom(...roles)))
  const ids = fc.oneof(
    fc.integer({ min: 0, max: 50 }),
    fc.integer({ min: 0, max: 50 }).map(String),
    fc.bigInt({ min: 0n, max: 9223372036854775807n }).map(String),
  )
  fc.assert(
    fc.property(hierarchies, fc.infiniteStream(fc.nat()), ([roles, adminRole], picks) => {
      const options = resolveCapabilityOptions({ roles, adminRole, groupIdType: 'bigint' })
      const pick = picks[Symbol.iterator]()
      const names = [...roles, 'unknown']
      const permissions = fc
        .sample(ids, { numRuns: 20, seed: pick.next().value as number })
        .map((group) => ({
          group,
          role: names[(pick.next().value as number) % names.length] as string,
        }))
      const { capability } = deriveCapability({ sub: 'p', permissions }, options)
      return holds(capability, permissions, roles, adminRole, String)
    }),
    { numRuns: 200 },
  )
  t.pass('200 random hierarchies and claims hold every property')
})

t.test('no claim value outside the group-ID grammar is ever granted', async (t) => {
  const options = resolveCapabilityOptions({ groupIdType: 'bigint' })
  const anything = fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null))
  fc.assert(
    fc.property(fc.array(anything, { minLength: 1, maxLength: 5 }), (groups) => {
      let capability: Capability
      try {
        capability = deriveCapability(
          { sub: 'p', permissions: groups.map((group) => ({ group, role: 'member' })) },
          options,
        ).capability
      } catch (error) {
        return (error as { code?: string }).code === 'KH_TOKEN_PERMISSIONS'
      }
      return capability
        .groups('member')
        .every((g) => /^(0|[1-9][0-9]{0,18})$/.test(g) && BigInt(g) <= 9223372036854775807n)
    }),
    { numRuns: 500 },
  )
  t.pass('500 random claims either derive canonical IDs or are refused as invalid')
})

/**
 * How the permissions claim was read before derivation checked it in one pass: the whole claim
 * through the zod schema, then each entry's own keys and group ID. The one-pass reading must
 * accept exactly the same claims, derive the same groups, and refuse with the same cause.
 */
function readBySchema(permissions: unknown, options: ResolvedCapabilityOptions) {
  const roles = options.hierarchy.roles
  if (permissions === undefined) return { ignored: 0, isAdmin: false, groups: roles.map(() => []) }
  const parsed = permissionsSchema(options.maxPermissions).safeParse(permissions)
  if (!parsed.success) return { refused: parsed.error.issues }
  const topRank = new Map<string, number>()
  let ignored = 0
  for (const [index, entry] of parsed.data.entries()) {
    const claimed = (permissions as object[])[index] as object
    if (!Object.hasOwn(claimed, 'group') || !Object.hasOwn(claimed, 'role')) {
      return { refused: `permissions[${index}] lacks its own group or role` }
    }
    const group = parseGroupId(options.groupIdType, entry.group)
    if (group === undefined) {
      return { refused: `permissions[${index}].group is not a ${options.groupIdType} group ID` }
    }
    const rank = options.hierarchy.rank(entry.role)
    if (rank === undefined) ignored++
    else if ((topRank.get(group) ?? -1) < rank) topRank.set(group, rank)
  }
  return {
    ignored,
    isAdmin: [...topRank.values()].some((rank) => rank >= options.hierarchy.adminRank),
    groups: roles.map((_, r) => [...topRank].filter(([, top]) => top >= r).map(([g]) => g)),
  }
}

t.test('the one-pass reading accepts, derives and refuses as the schema reading', async (t) => {
  const anyValue = fc.oneof(
    fc.string({ maxLength: 4 }),
    fc.constantFrom('x'.repeat(257), '7', '1,3', 'a-b', 'Member'),
    fc.double(),
    fc.integer({ min: -2, max: 2 ** 31 }),
    fc.constantFrom(true, null, undefined, [], {}, 2 ** 53),
  )
  const groups = fc.oneof(
    { arbitrary: uuids, weight: 4 },
    { arbitrary: fc.integer({ min: 0, max: 9 }).map(String), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: 9 }), weight: 2 },
    { arbitrary: anyValue, weight: 1 },
  )
  const roles = fc.oneof(
    { arbitrary: defaultRoles, weight: 8 },
    { arbitrary: fc.constant('r'.repeat(257)), weight: 1 },
    { arbitrary: anyValue, weight: 1 },
  )
  const entries = fc.oneof(
    { arbitrary: fc.record({ group: groups, role: roles }), weight: 20 },
    {
      arbitrary: fc.record({ group: groups, role: roles }, { requiredKeys: [] }),
      weight: 1,
    },
    { arbitrary: anyValue, weight: 1 },
  )
  const claims = fc.oneof(
    { arbitrary: fc.array(entries, { maxLength: 5 }), weight: 10 },
    { arbitrary: anyValue, weight: 1 },
  )
  const types = ['uuid', 'bigint', 'integer', 'text'] as const
  let accepted = 0
  const refused = { bySchema: 0, byEntryCheck: 0 }
  fc.assert(
    fc.property(fc.constantFrom(...types), claims, (groupIdType, permissions) => {
      const options = resolveCapabilityOptions({ groupIdType, maxPermissions: 4 })
      const expected = readBySchema(permissions, options)
      let derived: ReturnType<typeof deriveCapability>
      try {
        derived = deriveCapability({ sub: 'p', permissions }, options)
      } catch (error) {
        const { code, cause } = error as { code: string; cause: Error & { issues?: unknown } }
        if (code !== 'KH_TOKEN_PERMISSIONS' || !('refused' in expected)) return false
        refused[typeof expected.refused === 'string' ? 'byEntryCheck' : 'bySchema']++
        return isDeepStrictEqual(cause.issues ?? cause.message, expected.refused)
      }
      accepted++
      if ('refused' in expected) return false
      const { capability, ignored } = derived
      return (
        isDeepStrictEqual(
          capability.roles.map((role) => capability.groups(role)),
          expected.groups,
        ) &&
        capability.isAdmin === expected.isAdmin &&
        ignored === expected.ignored
      )
    }),
    { numRuns: 1000 },
  )
  t.ok(
    accepted > 100 && refused.bySchema > 100 && refused.byEntryCheck > 100,
    `${accepted} claims accepted; refused by the schema ${refused.bySchema}, by an entry check ${refused.byEntryCheck}`,
  )
})
