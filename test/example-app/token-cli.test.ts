/**
 * `example-app/token.ts`: mints tokens for the README's curl session with the server's JWT_SECRET.
 */
import { uncoveredChildEnv } from '../helpers/child-env.ts'
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { jwtVerify } from 'jose'

const secret = 'a-test-secret-of-at-least-32-bytes!'
const group = '6e8bc430-9c3a-11d9-9669-0800200c9a66'

function run(args: string[], env: Record<string, string> = { JWT_SECRET: secret }) {
  const base = { ...process.env }
  delete base.JWT_SECRET
  return spawnSync(process.execPath, ['--import', 'tsx', 'example-app/token.ts', ...args], {
    cwd: new URL('../../', import.meta.url),
    env: uncoveredChildEnv({ ...base, ...env }),
    encoding: 'utf8',
  })
}

t.test('prints a token for <sub> with the given <group>:<role> permissions', async (t) => {
  const result = run(['alice', `${group}:member`, `${group}:moderator`])
  t.equal(result.status, 0)
  const { payload, protectedHeader } = await jwtVerify(
    result.stdout.trim(),
    new TextEncoder().encode(secret),
    { issuer: 'keyhole-example', audience: 'forum', algorithms: ['HS256'] },
  )
  t.equal(protectedHeader.alg, 'HS256')
  t.match(payload, {
    sub: 'alice',
    permissions: [
      { group, role: 'member' },
      { group, role: 'moderator' },
    ],
    exp: Number,
    iat: Number,
  })
})

t.test('a token with no permissions', async (t) => {
  const result = run(['nobody'])
  t.equal(result.status, 0)
  const { payload } = await jwtVerify(result.stdout.trim(), new TextEncoder().encode(secret))
  t.same(payload.permissions, [])
})

const refused: [string, string[], Record<string, string> | undefined, RegExp][] = [
  ['no subject', [], undefined, /usage: token\.ts <sub>/],
  ['a grant without a role', ['alice', group], undefined, /not <group-uuid>:<role>/],
  ['an unknown role', ['alice', `${group}:owner`], undefined, /not <group-uuid>:<role>/],
  ['ROLE:GROUP, the old order', ['alice', `member:${group}`], undefined, /not <group-uuid>:<role>/],
  ['JWT_SECRET unset', ['alice'], {}, /set JWT_SECRET/],
  ['JWT_SECRET too short', ['alice'], { JWT_SECRET: 'short' }, /JWT_SECRET must be at least/],
]

t.test('misuse: a message on stderr, exit status 1, no token', (t) => {
  for (const [name, args, env, message] of refused) {
    const result = run(args, env)
    t.equal(result.status, 1, name)
    t.match(result.stderr, message, name)
    t.equal(result.stdout, '', `${name}: no token`)
  }
  t.end()
})
