import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { ConfigError, parseConfig, parseSetupConfig } from '../../example-app/config.ts'
import { developmentDataKey, developmentDataKeyLine } from '../../example-app/data-key.ts'

const secret = 'x'.repeat(32)

t.test(
  'defaults: port 3000 on 127.0.0.1, issuer keyhole-example, audience forum, 60 s monitor',
  (t) => {
    const config = parseConfig({ JWT_SECRET: secret })
    t.match(config, {
      port: 3000,
      host: '127.0.0.1',
      databaseUrl: undefined,
      jwtSecretGenerated: false,
      jwtIssuer: 'keyhole-example',
      jwtAudience: 'forum',
      monitorIntervalMs: 60_000,
      retentionDays: undefined,
    })
    t.equal(config.jwtSecret, secret)
    t.ok(Object.isFrozen(config))
    t.end()
  },
)

t.test('every variable is read', (t) => {
  const config = parseConfig({
    PORT: '8080',
    HOST: '0.0.0.0',
    DATABASE_URL: 'postgres://u:p@db.example:5432/forum',
    JWT_SECRET: secret,
    JWT_ISSUER: 'https://auth.example',
    JWT_AUDIENCE: 'api',
    MONITOR_INTERVAL_MS: '5000',
    KEYHOLE_RETENTION_DAYS: '365',
    DATA_DIR: '/var/lib/forum',
  })
  t.match(config, {
    port: 8080,
    host: '0.0.0.0',
    databaseUrl: 'postgres://u:p@db.example:5432/forum',
    jwtIssuer: 'https://auth.example',
    jwtAudience: 'api',
    monitorIntervalMs: 5000,
    retentionDays: 365,
    dataDir: '/var/lib/forum',
  })
  t.end()
})

t.test('empty variables count as unset', (t) => {
  const config = parseConfig({ PORT: '', DATABASE_URL: '', JWT_SECRET: '' })
  t.equal(config.port, 3000)
  t.equal(config.databaseUrl, undefined)
  t.equal(config.jwtSecretGenerated, true)
  t.end()
})

t.test('without JWT_SECRET a random 32-byte secret is generated, never serialised', (t) => {
  const a = parseConfig({})
  const b = parseConfig({})
  t.equal(a.jwtSecretGenerated, true)
  t.ok(Buffer.byteLength(a.jwtSecret) >= 32)
  t.not(a.jwtSecret, b.jwtSecret, 'a new secret per run')
  t.notMatch(JSON.stringify(a), a.jwtSecret)
  t.notMatch(JSON.stringify(parseConfig({ JWT_SECRET: secret })), secret)
  t.end()
})

const bad: [string, Record<string, string>, RegExp][] = [
  ['PORT not a number', { PORT: 'http' }, /^invalid configuration: PORT must be a whole number$/],
  ['PORT negative', { PORT: '-1' }, /PORT must be a whole number/],
  ['PORT out of range', { PORT: '70000' }, /PORT must be between 0 and 65535/],
  ['PORT fractional', { PORT: '80.5' }, /PORT must be a whole number/],
  ['DATABASE_URL not a URL', { DATABASE_URL: 'localhost' }, /DATABASE_URL must be a postgres/],
  ['DATABASE_URL of another scheme', { DATABASE_URL: 'mysql://h/db' }, /DATABASE_URL must be/],
  ['JWT_SECRET too short', { JWT_SECRET: 'short' }, /JWT_SECRET must be at least 32 bytes/],
  ['MONITOR_INTERVAL_MS not a number', { MONITOR_INTERVAL_MS: '1m' }, /MONITOR_INTERVAL_MS must/],
  ['MONITOR_INTERVAL_MS too small', { MONITOR_INTERVAL_MS: '7' }, /between 1000 and 86400000/],
  ['KEYHOLE_RETENTION_DAYS too large', { KEYHOLE_RETENTION_DAYS: '100000' }, /between 1 and 36500/],
  ['KEYHOLE_RETENTION_DAYS not a number', { KEYHOLE_RETENTION_DAYS: '1y' }, /RETENTION_DAYS must/],
]

t.test('a bad value is one line naming the variable, never echoing the value', (t) => {
  for (const [name, env, message] of bad) {
    t.throws(() => parseConfig(env), ConfigError, name)
    const error = t.throws(() => parseConfig(env), { message }, name)
    const text = error instanceof Error ? error.message : ''
    t.notMatch(text, '\n', `${name}: one line`)
    for (const value of Object.values(env)) t.notOk(text.includes(value), `${name}: no value`)
  }
  t.end()
})

t.test('KEYHOLE_SIGNING_KEY: read for the serve step, never serialised', (t) => {
  const key = 'k'.repeat(43)
  const config = parseConfig({ JWT_SECRET: secret, KEYHOLE_SIGNING_KEY: key })
  t.equal(config.signingKey, key)
  t.notMatch(JSON.stringify(config), key)
  t.equal(parseConfig({}).signingKey, undefined)
  t.throws(() => parseConfig({ KEYHOLE_SIGNING_KEY: 'not base64url!' }), {
    message:
      'invalid configuration: KEYHOLE_SIGNING_KEY must be at least 32 bytes as base64url (what `keyhole setup --generate-key` prints)',
  })
  t.end()
})

t.test('KEYHOLE_DATA_KEY: 32 bytes as base64 or base64url, never serialised', (t) => {
  const bytes = randomBytes(32)
  for (const key of [bytes.toString('base64'), bytes.toString('base64url')]) {
    const config = parseConfig({ JWT_SECRET: secret, KEYHOLE_DATA_KEY: key })
    t.equal(config.dataKey, key)
    t.notMatch(JSON.stringify(config), key, 'not in JSON')
    t.notOk(Object.keys(config).includes('dataKey'), 'not enumerable')
  }
  t.equal(parseConfig({}).dataKey, undefined)
  const bad = [
    ['16 bytes', randomBytes(16).toString('base64')],
    ['33 bytes', randomBytes(33).toString('base64')],
    ['not base64', `${'!'.repeat(43)}=`],
  ]
  for (const [name, value] of bad) {
    const error = t.throws(() => parseConfig({ KEYHOLE_DATA_KEY: value as string }), {
      name: 'ConfigError',
      message:
        'invalid configuration: KEYHOLE_DATA_KEY must be 32 bytes as base64 (openssl rand -base64 32)',
    })
    t.notOk(String((error as Error).message).includes(value as string), `${name}: no value`)
  }
  t.end()
})

t.test('the development data key: generated once per data directory, kept beside it', async (t) => {
  const dir = join(await mkdtemp(join(tmpdir(), 'keyhole-data-key-')), 'nested', '.data')
  t.teardown(() => rm(dirname(dirname(dir)), { recursive: true, force: true }))
  const first = await developmentDataKey(dir)
  t.match(first, { path: join(dir, 'data-key'), created: true })
  t.equal(Buffer.from(first.key, 'base64').length, 32, '32 random bytes')
  t.equal((await stat(first.path)).mode & 0o777, 0o600, 'readable by its owner only')
  const again = await developmentDataKey(dir)
  t.same(again, { ...first, created: false }, 'the same key on the next start')
  const line = developmentDataKeyLine(first)
  t.match(line, /^KEYHOLE_DATA_KEY is not set: .* generated now and kept in .*data-key/)
  t.match(developmentDataKeyLine(again), / kept in /)
  t.notOk(line.includes(first.key), 'the line never holds the key')

  await writeFile(first.path, 'not a key\n')
  await t.rejects(developmentDataKey(dir), {
    name: 'ConfigError',
    message: `${first.path} does not hold a data key (32 bytes as base64): restore it, or start with --fresh`,
  })
  // A data-key path that cannot be read or written (here a directory): the start's error.
  await rm(first.path)
  await mkdir(first.path)
  await t.rejects(developmentDataKey(dir), { code: 'EEXIST' }, 'never overwritten')
})

const setupEnv = {
  KEYHOLE_ADMIN_URL: 'postgres://admin:admin-password@db.example/forum',
  KEYHOLE_MIGRATION_PASSWORD: 'migration-password',
  KEYHOLE_RUNTIME_PASSWORD: 'runtime-password',
  KEYHOLE_SIGNING_KEY: 's'.repeat(43),
}

t.test('the setup step: four variables, the roles forum_migrator and forum_app', (t) => {
  const config = parseSetupConfig(setupEnv)
  t.same(config.roles, { migration: 'forum_migrator', runtime: 'forum_app' })
  t.same(
    [config.adminUrl, config.migrationPassword, config.runtimePassword, config.signingKey],
    Object.values(setupEnv),
  )
  t.same(Object.keys(config), ['roles'], 'the secrets are not enumerable')
  t.ok(Object.isFrozen(config))
  const named = parseSetupConfig({
    ...setupEnv,
    FORUM_MIGRATION_ROLE: 'm',
    FORUM_RUNTIME_ROLE: 'r',
  })
  t.same(named.roles, { migration: 'm', runtime: 'r' })
  t.end()
})

const badSetup: [string, Record<string, string>, string][] = [
  [
    'nothing set',
    {},
    'invalid configuration: KEYHOLE_ADMIN_URL must be set; KEYHOLE_MIGRATION_PASSWORD must be set; KEYHOLE_RUNTIME_PASSWORD must be set; KEYHOLE_SIGNING_KEY must be set',
  ],
  [
    'an admin URL of another scheme',
    { ...setupEnv, KEYHOLE_ADMIN_URL: 'mysql://h/db' },
    'invalid configuration: KEYHOLE_ADMIN_URL must be a postgres:// or postgresql:// URL',
  ],
  [
    'a short migration password',
    { ...setupEnv, KEYHOLE_MIGRATION_PASSWORD: 'eleven-char' },
    'invalid configuration: KEYHOLE_MIGRATION_PASSWORD must be at least 12 characters',
  ],
  [
    'a role name that is no identifier',
    { ...setupEnv, FORUM_RUNTIME_ROLE: 'Forum-App' },
    'invalid configuration: FORUM_RUNTIME_ROLE must be a lower-case SQL identifier',
  ],
]

t.test('a bad setup variable is one line naming it, never echoing the value', (t) => {
  for (const [name, env, message] of badSetup) {
    const error = t.throws(() => parseSetupConfig(env), { message }, name)
    t.ok(error instanceof ConfigError, `${name}: a ConfigError`)
  }
  t.end()
})
