/**
 * The shape of the `permissions` claim: a bounded list of `{ group, role }` objects.
 *
 * zod reads the two known keys and builds fresh objects; every other key of an entry (including
 * `__proto__` and `constructor`, which `JSON.parse` makes own properties) is ignored, never merged,
 * so an issuer may add keys of its own without breaking keyhole. The list's size cap is checked
 * before any entry is parsed. The group ID's type is checked by `parseGroupId` during derivation
 * rather than here: that one definition also reads the groups routes name, and it yields the
 * canonical form derivation needs anyway (measured cheaper than a zod refinement per entry).
 *
 * `deriveCapability` makes these checks itself as it reads each entry (copying 10 000 entries
 * first cost a quarter of the derivation) and runs this schema on a claim it refuses, so that the
 * error's cause is the schema's own description of the fault.
 */
import { z } from 'zod'

/** Longest role name or group value read from a claim (longer ones are refused, not truncated). */
export const MAX_FIELD = 256

/**
 * The zod schema of the permissions claim for a given cap on its entries.
 *
 * @example
 * permissionsSchema(10_000).safeParse([{ group: '0b6a…', role: 'member' }])
 */
export function permissionsSchema(maxPermissions: number) {
  return z
    .array(
      z.object({
        group: z.union([z.string().max(MAX_FIELD), z.number()]),
        role: z.string().max(MAX_FIELD),
      }),
    )
    .max(maxPermissions)
}

export type PermissionsSchema = ReturnType<typeof permissionsSchema>
export type PermissionEntry = z.infer<PermissionsSchema>[number]
