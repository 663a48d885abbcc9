/**
 * The shape of the `permissions` claim: a bounded list of `{ group, role }`. zod checks the
 * structure and builds fresh objects (unknown keys such as `__proto__` are dropped, never merged);
 * the group ID's type is checked by {@link parseGroupId} during derivation, where its canonical
 * form is needed anyway.
 */
import { z } from 'zod'

export function permissionsSchema(maxPermissions: number) {
  return z
    .array(
      z.object({
        group: z.union([z.string().max(256), z.number()]),
        role: z.string().max(256),
      }),
    )
    .max(maxPermissions)
}

export type PermissionEntry = z.infer<ReturnType<typeof permissionsSchema>>[number]
