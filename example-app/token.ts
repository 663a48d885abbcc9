/**
 * Mints a forum token for trying the example out, signed with the server's JWT_SECRET (and
 * JWT_ISSUER/JWT_AUDIENCE, when set):
 *
 *   node --import tsx example-app/token.ts <sub> [<role>:<group-uuid> ...]
 *
 * e.g. `… token.ts alice member:6e8bc430-…` prints a token for alice as a member of that group. In
 * production an authentication service issues tokens; this stands in for it.
 */
import { parseConfig, type ExampleConfig } from './config.ts'
import { signToken, type Permission } from './tokens.ts'

const usage = 'usage: token.ts <sub> [member|moderator|admin:<group-uuid> ...]'
const roleAndGroup = /^(member|moderator|admin):([0-9a-f-]{36})$/

function fail(message: string): never {
  process.stderr.write(`keyhole example: ${message}\n`)
  process.exit(1)
}

const [sub, ...grants] = process.argv.slice(2)
if (!sub) fail(usage)
const permissions: Permission[] = grants.map((grant) => {
  const match = roleAndGroup.exec(grant)
  if (!match) fail(`not <role>:<group-uuid>: ${grant}\n${usage}`)
  return { role: match[1] as Permission['role'], group: match[2] as string }
})

let config: ExampleConfig
try {
  config = parseConfig(process.env)
} catch (error) {
  fail((error as Error).message)
}
if (config.jwtSecretGenerated) fail('set JWT_SECRET to the secret the server was started with')
process.stdout.write(`${await signToken(config, { sub, permissions })}\n`)
