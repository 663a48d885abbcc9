/**
 * The callers of a policy test: nobody, each role below the admin role in group A and in group B,
 * an admin, and the application's own. Each is a capability derived from a token payload, as a
 * request's is, with the placeholders `A` and `B` standing for the two groups' IDs.
 */
import type { Capability } from '../capability/capability.ts'
import { deriveCapability, type ResolvedCapabilityOptions } from '../capability/derive.ts'
import { ConfigurationError } from '../errors.ts'
import type { GroupName } from './fixtures.ts'

/** One permission of a caller: a role in group `A`, `B`, or a group ID of your own. */
export interface CallerPermission {
  readonly group: GroupName | (string & {})
  readonly role: string
}

/** A caller of your own: its subject and permissions, as its token would carry them. */
export interface CallerSpec {
  /** @default the subject every generated caller has (`subjects.caller`) */
  readonly subject?: string | undefined
  readonly permissions?: readonly CallerPermission[] | undefined
}

/** A caller with its capability; `undefined` for nobody (no capability in the session). */
export interface Caller {
  readonly name: string
  readonly capability: Capability | undefined
  /** What the guard layer runs with: for nobody, a capability without groups owning nothing. */
  readonly guardCapability: Capability
}

export const NOBODY = 'nobody'

export function buildCallers(
  options: ResolvedCapabilityOptions,
  groupIds: Readonly<Record<GroupName, string>>,
  subject: string,
  anonymousSubject: string,
  own: Readonly<Record<string, CallerSpec>>,
): Caller[] {
  const derive = (spec: CallerSpec) =>
    deriveCapability(
      {
        sub: spec.subject ?? subject,
        permissions: (spec.permissions ?? []).map((p) => ({
          group: p.group === 'A' || p.group === 'B' ? groupIds[p.group as GroupName] : p.group,
          role: p.role,
        })),
      },
      options,
    ).capability
  const { roles, adminRank } = options.hierarchy
  const specs: [string, CallerSpec][] = []
  for (const group of ['A', 'B'] as const) {
    for (const role of roles.slice(0, adminRank)) {
      specs.push([`${role} of ${group}`, { permissions: [{ group, role }] }])
    }
  }
  specs.push(['admin', { permissions: [{ group: 'A', role: options.hierarchy.adminRole }] }])
  for (const [name, spec] of Object.entries(own)) {
    if (name === NOBODY || specs.some(([n]) => n === name)) {
      throw new ConfigurationError(
        'KH_INVALID_OPTIONS',
        `The caller name ${JSON.stringify(name)} is taken by a generated caller`,
      )
    }
    specs.push([name, spec])
  }
  const anonymous = derive({ subject: anonymousSubject })
  return [
    { name: NOBODY, capability: undefined, guardCapability: anonymous },
    ...specs.map(([name, spec]) => {
      const capability = derive(spec)
      return { name, capability, guardCapability: capability }
    }),
  ]
}
