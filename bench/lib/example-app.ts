/**
 * The example app (RLS mode) as the HTTP part and the profiles build it: a JWT secret and a data
 * key of this run's own (the forum's invite codes are encrypted) on `databaseUrl`, with the given
 * role names. Imported when called: the example imports `keyhole` by name, which the bench resolves
 * to the source (`--conditions=keyhole-source`).
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { TokenClaims, TokenSettings } from '../../example-app/tokens.ts'

export interface ExampleApp {
  readonly app: FastifyInstance
  /** The secret, issuer and audience its tokens are signed with (the baselines verify them too). */
  readonly settings: TokenSettings
  /** A token for `claims` that the app (and every baseline given `settings`) accepts. */
  sign(claims: TokenClaims): Promise<string>
}

export async function buildExampleApp(
  databaseUrl: string,
  roles: { readonly migration: string; readonly runtime: string },
): Promise<ExampleApp> {
  const { build } = await import('../../example-app/app.ts')
  const { signToken } = await import('../../example-app/tokens.ts')
  const { dataKeys } = await import('keyhole')
  const settings: TokenSettings = {
    jwtSecret: randomBytes(32).toString('base64url'),
    jwtIssuer: 'keyhole-bench',
    jwtAudience: 'forum',
  }
  const app = await build({
    databaseUrl,
    ...settings,
    dataKeys: dataKeys({ current: randomBytes(32) }),
    roles,
  })
  return { app, settings, sign: (claims) => signToken(settings, claims) }
}
