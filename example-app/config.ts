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
  /** A role allowed to create roles (e.g. a superuser); unset: start an embedded PostgreSQL. */
  readonly databaseUrl: string | undefined
  /** The HS256 secret tokens are signed with (non-enumerable: never serialised into a log). */
  readonly jwtSecret: string
  /** True when JWT_SECRET was unset and a random secret was generated for this run. */
  readonly jwtSecretGenerated: boolean
  readonly jwtIssuer: string
  readonly jwtAudience: string
  readonly monitorIntervalMs: number
  /** Where the embedded PostgreSQL keeps its data; default example-app/.data/. */
  readonly dataDir: string
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

const envSchema = z.object({
  PORT: decimal('PORT', 0, 65535).default(3000),
  HOST: nonEmpty('HOST').default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .refine(
      (value) => URL.canParse(value) && /^postgres(ql)?:$/.test(new URL(value).protocol),
      'DATABASE_URL must be a postgres:// or postgresql:// URL',
    )
    .optional(),
  JWT_SECRET: z
    .string()
    // HS256 needs a key at least as long as its hash (RFC 7518 §3.2): 32 bytes.
    .refine((s) => Buffer.byteLength(s, 'utf8') >= 32, 'JWT_SECRET must be at least 32 bytes')
    .optional(),
  JWT_ISSUER: nonEmpty('JWT_ISSUER').default('keyhole-example'),
  JWT_AUDIENCE: nonEmpty('JWT_AUDIENCE').default('forum'),
  MONITOR_INTERVAL_MS: decimal('MONITOR_INTERVAL_MS', 1000, 86_400_000).default(60_000),
  DATA_DIR: z.string().default(fileURLToPath(new URL('./.data/', import.meta.url))),
})

/**
 * Reads the configuration from `env`. Empty variables count as unset, as shells often export them
 * that way. Throws {@link ConfigError} with a one-line message naming the first bad variable.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): ExampleConfig {
  const present: Record<string, string> = {}
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key]
    if (value !== undefined && value !== '') present[key] = value
  }
  const parsed = envSchema.safeParse(present)
  if (!parsed.success) {
    // Every rule above carries a message naming its variable and never its value.
    throw new ConfigError(
      `invalid configuration: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
    )
  }
  const v = parsed.data
  const config = {
    port: v.PORT,
    host: v.HOST,
    databaseUrl: v.DATABASE_URL,
    jwtSecretGenerated: v.JWT_SECRET === undefined,
    jwtIssuer: v.JWT_ISSUER,
    jwtAudience: v.JWT_AUDIENCE,
    monitorIntervalMs: v.MONITOR_INTERVAL_MS,
    dataDir: v.DATA_DIR,
  }
  Object.defineProperty(config, 'jwtSecret', {
    value: v.JWT_SECRET ?? randomBytes(32).toString('base64url'),
    enumerable: false,
  })
  return Object.freeze(config) as ExampleConfig
}
