/**
 * The token options shared by every adapter. Validated once with zod (an error names the option),
 * copied and frozen; the caller's object is never mutated. Adapters extend the schema with their own
 * options: `z.object({ ...keyholeOptionsShape, ...own }).strict()`.
 */
import type { KeyObject } from 'node:crypto'
import type { CryptoKey, JWK, JWTPayload, ProtectedHeaderParameters } from 'jose'
import { z } from 'zod'
import { capabilityOptionsSchema, type CapabilityOptions } from './capability/derive.ts'
import { ConfigurationError } from './errors.ts'

/** The JWS algorithms keyhole verifies. `none` is not one of them, in any spelling. */
export const supportedAlgorithms = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const

export type Algorithm = (typeof supportedAlgorithms)[number]

/** A verification key as jose accepts it. */
export type VerificationKey = CryptoKey | KeyObject | Uint8Array

/** Resolves the key for one token; `undefined` means no key matches (401 `KH_TOKEN_KEY_UNKNOWN`). */
export type GetKey = (
  protectedHeader: ProtectedHeaderParameters,
  token: string,
) => VerificationKey | undefined | Promise<VerificationKey | undefined>

/** Remote JWKS tuning, passed to jose's `createRemoteJWKSet`. */
export interface JwksOptions {
  /**
   * Milliseconds after a fetch during which an unknown `kid` does not trigger another fetch, so a
   * flood of made-up `kid`s costs at most one request to the key server per period.
   * @default 30000
   */
  cooldownDuration?: number
  /**
   * Milliseconds a fetched key set is trusted before it is fetched again (key rotation). Cached
   * tokens too: past it, a cache hit refetches the set first, and a refetch that drops a key
   * withdraws every token verified with it (401 from then on).
   * @default 600000
   */
  cacheMaxAge?: number
  /**
   * Milliseconds a fetch may take; slower answers fail the request with 503 (never accept).
   * @default 5000
   */
  timeoutDuration?: number
}

/** The verified-token cache. */
export interface CacheOptions {
  /**
   * The most tokens held; the least recently used is evicted first. Each entry holds the token
   * string (at most `maxTokenBytes`), so memory is bounded by `max × maxTokenBytes`.
   * @default 10000
   */
  max?: number
  /** @default true */
  enabled?: boolean
}

export interface KeyholeOptions {
  /**
   * The HMAC secret for HS256/384/512 (a string is taken as UTF-8). It must be at least as long as
   * the hash of every listed HS algorithm (32/48/64 bytes): a shorter one is guessable offline.
   * Exactly one of `secret`, `publicKey`, `jwksUrl`, `getKey`.
   */
  secret?: string | Uint8Array | undefined
  /**
   * One public key: PEM (SPKI) text, a public JWK, or a `KeyObject`/`CryptoKey`. It serves exactly
   * one algorithm (`algorithms` must list one), so a key can never be used with another primitive.
   * RSA keys must have at least 2048 bits; a JWK with `use: 'enc'` or another `alg` is refused.
   */
  publicKey?: string | JWK | KeyObject | CryptoKey | undefined
  /**
   * The URL of a JSON Web Key Set (https, or http on a loopback address). Keys are selected by exact
   * `kid`; the set is cached, refetched on an unknown `kid` after `jwks.cooldownDuration`, and a
   * failing or slow server makes requests fail with 503, never pass. After a failed fetch no other
   * is made for `min(jwks.cooldownDuration, 5 s)`, so a request flood does not hammer a key server
   * that is down. A fetched RSA key with a public exponent below 3 is never used.
   */
  jwksUrl?: string | URL | undefined
  /**
   * `true`: the key set is found through the issuer's discovery document, read once at start-up
   * (registration, `ready()`): `<issuer>/.well-known/openid-configuration` (OpenID Connect
   * Discovery), else RFC 8414's `/.well-known/oauth-authorization-server`. Needs `issuer` (one
   * URL, https or http on a loopback address) and no other key source. The document's `issuer`
   * must equal `issuer` exactly, and its `jwks_uri` becomes the key set (https, or http on a
   * loopback address), used as `jwksUrl` is. Any failure fails start-up with
   * `KH_DISCOVERY_FAILED`. With discovery, `typ` defaults to `'at+jwt'`.
   * @default false
   */
  discovery?: boolean | undefined
  /** Tuning of the remote key set (and of the discovery fetch); with `jwksUrl` or `discovery`. */
  jwks?: JwksOptions | undefined
  /**
   * Your own key lookup, called per verification with the protected header (after the algorithm
   * check). Return `undefined` for an unknown key (401); a thrown error answers 503, unless it is a
   * keyhole `TokenError`, which is passed through.
   */
  getKey?: GetKey | undefined
  /**
   * The algorithms accepted, matched against the token's `alg` exactly and never taken from it.
   * Required. HS algorithms only with `secret`; asymmetric ones only with a public key or a key
   * set; never both kinds. `EdDSA` (RFC 8037) and `Ed25519` (RFC 9864) name one signature: list the
   * name your issuer writes, or both. With a key set, each key serves the algorithm its `alg` (or
   * its type: an EC curve, Ed25519) binds it to; an RSA key without `alg` is not used while
   * several RSA algorithms are listed.
   */
  algorithms: readonly Algorithm[]
  /**
   * The required `iss`. Strongly encouraged: without it a token from any issuer sharing the key is
   * accepted.
   */
  issuer?: string | readonly string[] | undefined
  /**
   * The required `aud` (a token's `aud` array must contain one). Strongly encouraged: without it a
   * token minted for another service with the same key is accepted.
   */
  audience?: string | readonly string[] | undefined
  /**
   * Seconds of clock skew tolerated on `exp`, `nbf` and `iat`. Each second extends the life of a
   * stolen, expired token.
   * @default 0
   */
  clockTolerance?: number | undefined
  /** Seconds since `iat` after which a token is refused (then `iat` is required). */
  maxTokenAge?: number | undefined
  /**
   * The longest lifetime a token may claim, in seconds: refused (`KH_TOKEN_CLAIM`) when
   * `exp - iat` is larger, counted from now for a token without `iat`; and whatever its `iat`,
   * when `exp` is more than this plus 5 minutes away. Bounds how long a token minted with a
   * leaked key stays usable. `false` turns the bound off (a token may then claim any `exp`).
   * @default 86400 (a day)
   */
  maxTokenLifetime?: number | false | undefined
  /**
   * The required `typ` header, compared as RFC 8725 says (case-insensitive, `application/`
   * optional): `'at+jwt'` refuses ID tokens and every other kind of JWT. `false`: no check.
   * @default 'at+jwt' with `discovery`; no check otherwise
   */
  typ?: string | false | undefined
  /**
   * Whether `exp` is required. Turning it off makes a leaked token valid forever.
   * @default true
   */
  requireExp?: boolean | undefined
  /** Further claims that must be present. */
  requiredClaims?: readonly string[] | undefined
  /**
   * The largest token accepted, in bytes, checked before any decoding or crypto.
   * @default 8192
   */
  maxTokenBytes?: number | undefined
  /** The name of a cookie that may carry the token (a token in the header as well is refused). */
  cookie?: string | undefined
  /**
   * The realm named in `WWW-Authenticate`.
   * @default 'keyhole'
   */
  realm?: string | undefined
  /**
   * The verified-token cache, or `false`. A hit skips the signature check only; revocation and
   * expiry are still checked on every request, and a hit is trusted only while the key that
   * verified it is in the key set (see `jwks.cacheMaxAge`; with `getKey`, call `invalidate()`).
   * @default { max: 10000, enabled: true }
   */
  cache?: CacheOptions | false | undefined
  /**
   * Called on every request (cache hits included) with the verified payload. Anything but `false`
   * refuses the token (`KH_TOKEN_REVOKED`); a throw answers 503. Fail-closed: a hook that forgets to
   * return refuses.
   */
  isRevoked?: ((payload: Readonly<JWTPayload>) => boolean | Promise<boolean>) | undefined
  /** How the capability is read from the claims. */
  capability?: CapabilityOptions | undefined
}

function isFunction(value: unknown): boolean {
  return typeof value === 'function'
}

// A JWK, KeyObject or CryptoKey: keys.ts tells them apart and checks each.
function isKeyLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

const seconds = z.number().finite().nonnegative().max(31_536_000)
const milliseconds = z.number().int().positive().max(86_400_000)
const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)])

/** The schema's fields, for adapters that extend the options. */
export const keyholeOptionsShape = {
  secret: z.union([z.string(), z.instanceof(Uint8Array)]).optional(),
  publicKey: z
    .union([
      z.string(),
      z.custom<JWK | KeyObject | CryptoKey>(
        isKeyLike,
        'must be PEM text, a JWK, a KeyObject or a CryptoKey',
      ),
    ])
    .optional(),
  jwksUrl: z.union([z.string().min(1), z.instanceof(URL)]).optional(),
  discovery: z.boolean().optional(),
  jwks: z
    .object({
      cooldownDuration: milliseconds.optional(),
      cacheMaxAge: milliseconds.optional(),
      timeoutDuration: milliseconds.optional(),
    })
    .strict()
    .optional(),
  getKey: z.custom<GetKey>(isFunction, 'must be a function').optional(),
  algorithms: z.array(z.enum(supportedAlgorithms)).min(1),
  issuer: stringOrList.optional(),
  audience: stringOrList.optional(),
  clockTolerance: seconds.max(300).optional(),
  maxTokenAge: seconds.positive().optional(),
  maxTokenLifetime: z.union([seconds.positive(), z.literal(false)]).optional(),
  typ: z.union([z.string().min(1), z.literal(false)]).optional(),
  requireExp: z.boolean().optional(),
  requiredClaims: z.array(z.string().min(1)).optional(),
  maxTokenBytes: z.number().int().min(256).max(1_048_576).optional(),
  cookie: z
    .string()
    .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a cookie name')
    .optional(),
  realm: z
    .string()
    .regex(/^[\x20-\x7e]*$/, 'must be printable ASCII')
    .optional(),
  cache: z
    .union([
      z.literal(false),
      z
        .object({
          max: z.number().int().positive().max(10_000_000).optional(),
          enabled: z.boolean().optional(),
        })
        .strict(),
    ])
    .optional(),
  isRevoked: z
    .custom<NonNullable<KeyholeOptions['isRevoked']>>(isFunction, 'must be a function')
    .optional(),
  capability: capabilityOptionsSchema.optional(),
}

export const keyholeOptionsSchema = z
  .object(keyholeOptionsShape)
  .strict() satisfies z.ZodType<KeyholeOptions>

/** The options with defaults filled, frozen. Key material stays out of it (see `token/keys.ts`). */
export interface ResolvedTokenOptions {
  readonly algorithms: readonly Algorithm[]
  readonly issuer: string | readonly string[] | undefined
  readonly audience: string | readonly string[] | undefined
  readonly clockTolerance: number
  readonly maxTokenAge: number | undefined
  readonly maxTokenLifetime: number | undefined
  readonly typ: string | undefined
  readonly requiredClaims: readonly string[]
  readonly maxTokenBytes: number
  readonly cookie: string | undefined
  readonly realm: string
  readonly cache: { readonly max: number } | false
  readonly isRevoked: KeyholeOptions['isRevoked']
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length > 0 ? issue.path.join('.') : 'options'
  return `${path}: ${issue.message}`
}

/** The options as {@link parseKeyholeOptions} returns them: validated, a copy. */
export type ParsedKeyholeOptions = z.output<typeof keyholeOptionsSchema>

/**
 * Validates the options with zod; throws `ConfigurationError('KH_INVALID_OPTIONS')` naming each bad
 * option. Returns a validated copy; the caller's object is not touched.
 */
export function parseKeyholeOptions(options: KeyholeOptions): ParsedKeyholeOptions {
  const parsed = keyholeOptionsSchema.safeParse(options)
  if (!parsed.success) {
    throw new ConfigurationError(
      'KH_INVALID_OPTIONS',
      parsed.error.issues.map(describeIssue).join('; '),
      parsed.error,
    )
  }
  return parsed.data
}

/** Fills the defaults of validated options and freezes the result (key sources left out). */
export function resolveTokenOptions(options: ParsedKeyholeOptions): ResolvedTokenOptions {
  const required = new Set(options.requiredClaims ?? [])
  if (options.requireExp !== false) required.add('exp')
  const cache =
    options.cache === false || options.cache?.enabled === false
      ? false
      : Object.freeze({ max: options.cache?.max ?? 10_000 })
  const list = (value: string | readonly string[] | undefined) =>
    Array.isArray(value) ? Object.freeze([...value]) : (value as string | undefined)
  return Object.freeze({
    algorithms: Object.freeze([...options.algorithms]),
    issuer: list(options.issuer),
    audience: list(options.audience),
    clockTolerance: options.clockTolerance ?? 0,
    maxTokenAge: options.maxTokenAge,
    maxTokenLifetime:
      options.maxTokenLifetime === false ? undefined : (options.maxTokenLifetime ?? 86_400),
    typ:
      options.typ === false
        ? undefined
        : (options.typ ?? (options.discovery ? 'at+jwt' : undefined)),
    requiredClaims: Object.freeze([...required]),
    maxTokenBytes: options.maxTokenBytes ?? 8192,
    cookie: options.cookie,
    realm: options.realm ?? 'keyhole',
    cache,
    isRevoked: options.isRevoked,
  })
}
