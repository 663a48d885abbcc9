/**
 * Mints forum tokens the way an authentication service would: HS256, `iss`/`aud` as configured,
 * `sub`, `iat`, `exp` and a `permissions` claim. The example uses it for the development admin token
 * printed when JWT_SECRET is unset; the tests use it to act as members, moderators and admins.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'

export type ForumRole = 'member' | 'moderator' | 'admin'

export interface Permission {
  readonly group: string
  readonly role: ForumRole
}

export interface TokenSettings {
  readonly jwtSecret: string
  readonly jwtIssuer: string
  readonly jwtAudience: string
}

export interface TokenClaims {
  readonly sub: string
  readonly permissions: readonly Permission[]
  /** Lifetime in seconds; default one hour. */
  readonly expiresIn?: number
}

/** Signs a token for `claims` with the example's secret, issuer and audience. */
export async function signToken(settings: TokenSettings, claims: TokenClaims): Promise<string> {
  return new SignJWT({ permissions: claims.permissions })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuer(settings.jwtIssuer)
    .setAudience(settings.jwtAudience)
    .setIssuedAt()
    .setExpirationTime(`${claims.expiresIn ?? 3600}s`)
    .sign(new TextEncoder().encode(settings.jwtSecret))
}

/**
 * A token for trying the example out: admin (an `admin` entry in any group makes its holder admin
 * everywhere), valid for twelve hours.
 */
export function devAdminToken(settings: TokenSettings): Promise<string> {
  return signToken(settings, {
    sub: 'dev-admin',
    permissions: [{ group: randomUUID(), role: 'admin' }],
    expiresIn: 12 * 3600,
  })
}
