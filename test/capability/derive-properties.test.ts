import t from 'tap'
import fc from 'fast-check'
import { deriveCapability, resolveCapabilityOptions } from '../../src/capability/derive.ts'
import type { Capability } from '../../src/capability/capability.ts'

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
