/**
 * Test tokens: signed with jose (HS, ES, RS keys generated once per process) or hand-built, so a
 * test can mint exactly the malformed or unsigned token it needs.
 */
import { createHmac } from 'node:crypto'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'

/** A 32-byte HS256 secret (test only). */
export const secret = 'test-secret-test-secret-test-sec'
export const issuer = 'https://id.example.test'
export const audience = 'keyhole-test'
export const subject = 'user-1'
export const group = '6f1d3c1e-8f4b-4a59-9f57-0a0d3c1b2e4f'

export interface KeyPair {
  readonly alg: string
  readonly privateKey: CryptoKey
  readonly publicKey: CryptoKey
  readonly publicPem: string
  readonly publicJwk: JWK
}

async function keyPair(alg: string, kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return {
    alg,
    privateKey,
    publicKey,
    publicPem: await exportSPKI(publicKey),
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' },
  }
}

const pairs = new Map<string, Promise<KeyPair>>()

/** A key pair for `alg`, generated once per process per `kid`. */
export function keys(
  alg: 'ES256' | 'RS256' | 'PS256' | 'EdDSA',
  kid = `${alg}-1`,
): Promise<KeyPair> {
  const id = `${alg}/${kid}`
  let pair = pairs.get(id)
  if (pair === undefined) {
    pair = keyPair(alg, kid)
    pairs.set(id, pair)
  }
  return pair
}

/** Seconds since the epoch. */
export function now(): number {
  return Math.floor(Date.now() / 1000)
}

/** Claims a default test configuration accepts: one member permission, valid for an hour. */
export function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: subject,
    iss: issuer,
    aud: audience,
    iat: now(),
    exp: now() + 3600,
    permissions: [{ group, role: 'member' }],
    ...extra,
  }
}

/** Signs `payload` with `key` (a secret string, bytes or a private key) and `alg`. */
export async function sign(
  payload: Record<string, unknown>,
  key: string | Uint8Array | CryptoKey = secret,
  header: Record<string, unknown> & { alg?: string } = {},
): Promise<string> {
  const material = typeof key === 'string' ? new TextEncoder().encode(key) : key
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', ...header } as { alg: string })
    .sign(material)
}

/** base64url of a string, a JSON value or bytes. */
export function b64(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64url')
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString(
    'base64url',
  )
}

/** A hand-built compact token: no crypto, exactly the parts given. */
export function rawToken(header: unknown, payload: unknown, signature = 'c2ln'): string {
  return `${b64(header)}.${b64(payload)}.${signature}`
}

/**
 * An HS256 token built by hand (jose's signer refuses an unknown `crit`, for instance): the header
 * and payload exactly as given, with a valid HMAC over them.
 */
export function signRaw(
  header: unknown,
  payload: unknown,
  key: string | Uint8Array = secret,
): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
}
