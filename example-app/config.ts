/**
 * The forum's configuration, read once from the environment at start-up. A bad value is reported as
 * one line naming the variable (never its value: it may be a secret) and the process exits 1.
 */
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'

export interface ExampleConfig {
  readonly port: number
  readonly host: string
  /**
   * The runtime role's URL (the serve step), or in development a role allowed to create roles;
   * unset: start an embedded PostgreSQL.
   */
  readonly databaseUrl: string | undefined
  /** The key `npm run example -- setup` installed (non-enumerable); the serve step needs it. */
  readonly signingKey: string | undefined
  /**
   * KEYHOLE_DATA_KEY, the key the invite codes are encrypted with (non-enumerable); the serve step
   * needs it. Unset with the embedded PostgreSQL: a development key kept beside its data.
   */
  readonly dataKey: string | undefined
  /** The HS256 secret tokens are signed with (non-enumerable: never serialised into a log). */
  readonly jwtSecret: string
  /** True when JWT_SECRET was unset and a random secret was generated for this run. */
  readonly jwtSecretGenerated: boolean
  readonly jwtIssuer: string
  readonly jwtAudience: string
  readonly monitorIntervalMs: number
  /** KEYHOLE_RETENTION_DAYS: threads older than this are deleted hourly; undefined (default): never. */
  readonly retentionDays: number | undefined
  /** Where the embedded PostgreSQL keeps its data; default example-app/.data/. */
  readonly dataDir: string
}

/** The setup step's configuration (`npm run example -- setup`); the secrets are non-enumerable. */
export interface SetupConfig {
  /** A role allowed to create roles. */
  readonly adminUrl: string
  readonly migrationPassword: string
  readonly runtimePassword: string
  readonly signingKey: string
  readonly roles: { readonly migration: string; readonly runtime: string }
}

/** A configuration error: its message is the one line printed before exiting 1. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

const decimal = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,10}$/, `${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be between ${min} and ${max}`)

const nonEmpty = (name: string) => z.string().min(1, `${name} must not be empty`)

const postgresUrl = (name: string) =>
  z
    .string()
    .refine(
      (value) => URL.canParse(value) && /^postgres(ql)?:$/.test(new URL(value).protocol),
      `${name} must be a postgres:// or postgresql:// URL`,
    )

// keyhole's own rule for the key (32 bytes or more), as base64url text.
const signingKey = z
  .string()
  .regex(
    /^[A-Za-z0-9_-]{43,}$/,
    'KEYHOLE_SIGNING_KEY must be at least 32 bytes as base64url (what `keyhole setup --generate-key` prints)',
  )

// keyhole's rule for a data key: 32 bytes, as base64 or base64url text (`openssl rand -base64 32`).
export const dataKeyPattern = /^[A-Za-z0-9+/_-]{43}=?$/
const dataKey = z
  .string()
  .regex(dataKeyPattern, 'KEYHOLE_DATA_KEY must be 32 bytes as base64 (openssl rand -base64 32)')

const roleName = (name: string) =>
  z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, `${name} must be a lower-case SQL identifier`)

const password = (name: string) => z.string().min(12, `${name} must be at least 12 characters`)

const envSchema = z.object({
  PORT: decimal('PORT', 0, 65535).default(3000),
  HOST: nonEmpty('HOST').default('127.0.0.1'),
  DATABASE_URL: postgresUrl('DATABASE_URL').optional(),
  KEYHOLE_SIGNING_KEY: signingKey.optional(),
  KEYHOLE_DATA_KEY: dataKey.optional(),
  JWT_SECRET: z
    .string()
    // HS256 needs a key at least as long as its hash (RFC 7518 §3.2): 32 bytes.
    .refine((s) => Buffer.byteLength(s, 'utf8') >= 32, 'JWT_SECRET must be at least 32 bytes')
    .optional(),
  JWT_ISSUER: nonEmpty('JWT_ISSUER').default('keyhole-example'),
  JWT_AUDIENCE: nonEmpty('JWT_AUDIENCE').default('forum'),
  MONITOR_INTERVAL_MS: decimal('MONITOR_INTERVAL_MS', 1000, 86_400_000).default(60_000),
  KEYHOLE_RETENTION_DAYS: decimal('KEYHOLE_RETENTION_DAYS', 1, 36_500).optional(),
  DATA_DIR: z.string().default(fileURLToPath(new URL('./.data/', import.meta.url))),
})

const setupSchema = z.object({
  KEYHOLE_ADMIN_URL: postgresUrl('KEYHOLE_ADMIN_URL'),
  KEYHOLE_MIGRATION_PASSWORD: password('KEYHOLE_MIGRATION_PASSWORD'),
  KEYHOLE_RUNTIME_PASSWORD: password('KEYHOLE_RUNTIME_PASSWORD'),
  KEYHOLE_SIGNING_KEY: signingKey,
  FORUM_MIGRATION_ROLE: roleName('FORUM_MIGRATION_ROLE').default('forum_migrator'),
  FORUM_RUNTIME_ROLE: roleName('FORUM_RUNTIME_ROLE').default('forum_app'),
})

/** The set variables of `schema` in `env` (empty counts as unset), validated; one line if bad. */
function read<S extends z.ZodObject>(
  schema: S,
  env: Readonly<Record<string, string | undefined>>,
): z.output<S> {
  const present: Record<string, string> = {}
  for (const key of Object.keys(schema.shape)) {
    const value = env[key]
    if (value !== undefined && value !== '') present[key] = value
  }
  const parsed = schema.safeParse(present)
  if (!parsed.success) {
    // Every rule above carries a message naming its variable and never its value; a missing
    // required variable is named by its path.
    throw new ConfigError(
      `invalid configuration: ${parsed.error.issues.map((i) => (i.code === 'invalid_type' ? `${String(i.path[0])} must be set` : i.message)).join('; ')}`,
    )
  }
  return parsed.data
}

/**
 * The setup step's configuration from `env`: KEYHOLE_ADMIN_URL, KEYHOLE_MIGRATION_PASSWORD,
 * KEYHOLE_RUNTIME_PASSWORD and KEYHOLE_SIGNING_KEY, all required (the same variables as
 * `keyhole setup`); FORUM_MIGRATION_ROLE and FORUM_RUNTIME_ROLE name the roles.
 * Throws {@link ConfigError} with a one-line message naming each bad or missing variable.
 */
export function parseSetupConfig(env: Readonly<Record<string, string | undefined>>): SetupConfig {
  const v = read(setupSchema, env)
  const config = { roles: { migration: v.FORUM_MIGRATION_ROLE, runtime: v.FORUM_RUNTIME_ROLE } }
  for (const [key, value] of [
    ['adminUrl', v.KEYHOLE_ADMIN_URL],
    ['migrationPassword', v.KEYHOLE_MIGRATION_PASSWORD],
    ['runtimePassword', v.KEYHOLE_RUNTIME_PASSWORD],
    ['signingKey', v.KEYHOLE_SIGNING_KEY],
  ] as const) {
    Object.defineProperty(config, key, { value, enumerable: false })
  }
  return Object.freeze(config) as SetupConfig
}

/**
 * Reads the configuration from `env`. Empty variables count as unset, as shells often export them
 * that way. Throws {@link ConfigError} with a one-line message naming the first bad variable.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): ExampleConfig {
  const v = read(envSchema, env)
  const config = {
    port: v.PORT,
    host: v.HOST,
    databaseUrl: v.DATABASE_URL,
    jwtSecretGenerated: v.JWT_SECRET === undefined,
    jwtIssuer: v.JWT_ISSUER,
    jwtAudience: v.JWT_AUDIENCE,
    monitorIntervalMs: v.MONITOR_INTERVAL_MS,
    retentionDays: v.KEYHOLE_RETENTION_DAYS,
    dataDir: v.DATA_DIR,
  }
  Object.defineProperty(config, 'jwtSecret', {
    value: v.JWT_SECRET ?? randomBytes(32).toString('base64url'),
    enumerable: false,
  })
  Object.defineProperty(config, 'signingKey', { value: v.KEYHOLE_SIGNING_KEY, enumerable: false })
  Object.defineProperty(config, 'dataKey', { value: v.KEYHOLE_DATA_KEY, enumerable: false })
  return Object.freeze(config) as ExampleConfig
}
