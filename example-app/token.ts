/**
 * Mints a forum token for trying the example out, signed with the server's JWT_SECRET (and
 * JWT_ISSUER/JWT_AUDIENCE, when set):
 *
 *   node --import tsx example-app/token.ts <sub> [<group-uuid>:<role> ...]
 *
 * (GROUP:ROLE, the order `keyhole token --permission` takes), e.g. `… token.ts alice
 * 6e8bc430-…:member` prints a token for alice as a member of that group. In
 * production an authentication service issues tokens; this stands in for it.
 */
import { parseConfig, type ExampleConfig } from './config.ts'
import { signToken, type Permission } from './tokens.ts'

const usage = 'usage: token.ts <sub> [<group-uuid>:member|moderator|admin ...]'
const groupAndRole = /^([0-9a-f-]{36}):(member|moderator|admin)$/

function fail(message: string): never {
  process.stderr.write(`keyhole example: ${message}\n`)
  process.exit(1)
}

const [sub, ...grants] = process.argv.slice(2)
if (!sub) fail(usage)
const permissions: Permission[] = grants.map((grant) => {
  const match = groupAndRole.exec(grant)
  if (!match) fail(`not <group-uuid>:<role>: ${grant}\n${usage}`)
  return { group: match[1] as string, role: match[2] as Permission['role'] }
})

let config: ExampleConfig
try {
  config = parseConfig(process.env)
} catch (error) {
  fail((error as Error).message)
}
if (config.jwtSecretGenerated) fail('set JWT_SECRET to the secret the server was started with')
process.stdout.write(`${await signToken(config, { sub, permissions })}\n`)
