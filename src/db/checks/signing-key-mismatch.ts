import { createCapability } from '../../capability/create-capability.ts'
import { createRoleHierarchy } from '../../capability/role-hierarchy.ts'
import type { DatabaseFinding } from '../../errors.ts'
import { createCapabilitySigner } from '../sign-capability.ts'
import { finding, type Check } from './context.ts'

/** A capability that grants nothing: no roles, no groups, not admin. */
const probe = createCapability({
  subject: 'keyhole-check',
  hierarchy: createRoleHierarchy([], ''),
  groupIdType: 'text',
  expiresAt: undefined,
  isAdmin: false,
  topRank: new Map(),
})

/** `invalid_authorization_specification`: what set_capability raises for a refused value. */
const REFUSED = '28000'

/**
 * Check 12b: the database accepts a capability signed with the server's key. A server started
 * with another key than the one `keyhole setup` installed passes every catalog check, and every
 * request it signs is refused. Runs only with the server's key (`signingKey`, 'rls' mode), after
 * the signing-key table was found, in a transaction rolled back at once (the setting it sets is
 * transaction-local; the probe grants nothing anyway).
 *
 * The generated SQL:
 * ```sql
 * BEGIN; SELECT keyhole.set_capability($1); ROLLBACK
 * ```
 */
export const checkSigningKeyMismatch: Check = async ({ db, options }) => {
  const key = options.signingKey
  if (key === undefined || options.mode !== 'rls') return []
  const findings: DatabaseFinding[] = []
  await db.query('BEGIN')
  try {
    await db.query('SELECT keyhole.set_capability($1)', [createCapabilitySigner(key).sign(probe)])
  } catch (error) {
    // Anything else (no keyhole schema, no such function) is the other checks' finding.
    if ((error as { code?: unknown }).code === REFUSED) {
      findings.push(
        finding(
          'KH_DB_SIGNING_KEY_MISMATCH',
          "the database refused a capability signed with the server's signingKey: the key differs from the one `keyhole setup` installed, or the clocks differ",
          "deploy the installed key or re-run setup with the server's key",
        ),
      )
    }
  } finally {
    await db.query('ROLLBACK')
  }
  return findings
}
