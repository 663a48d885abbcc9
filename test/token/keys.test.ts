import { generateKeyPairSync, KeyObject } from 'node:crypto'
import t from 'tap'
import type { KeyholeOptions } from '../../src/options.ts'
import { createAuthenticator } from '../../src/token/authenticate.ts'
import { audience, claims, issuer, keys, secret, sign } from '../helpers/tokens.ts'

const rs = await keys('RS256')
const es = await keys('ES256')
const ed = await keys('EdDSA')
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey
const exponentOne = { ...(rs.publicJwk as Record<string, unknown>), e: 'AQ' }
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey
const ecPrivate = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey

interface Row {
  name: string
  options: Record<string, unknown>
  /** A fragment the message must contain: it names the option. */
  message: RegExp
}

const rows: Row[] = [
  {
    name: 'no key source',
    options: { algorithms: ['HS256'] },
    message: /exactly one key source.*none/,
  },
  {
    name: 'two key sources',
    options: { secret, publicKey: rs.publicPem, algorithms: ['HS256'] },
    message: /exactly one key source.*secret, publicKey/,
  },
  { name: 'algorithms missing', options: { secret }, message: /^algorithms:/ },
  { name: 'algorithms empty', options: { secret, algorithms: [] }, message: /^algorithms:/ },
  {
    name: "algorithms ['none']",
    options: { secret, algorithms: ['none'] },
    message: /^algorithms\.0:/,
  },
  {
    name: "algorithms ['NONE']",
    options: { secret, algorithms: ['NONE'] },
    message: /^algorithms\.0:/,
  },
  {
    name: 'algorithms a string',
    options: { secret, algorithms: 'HS256' },
    message: /^algorithms:/,
  },
  {
    name: 'HS and RS mixed',
    options: { secret, algorithms: ['HS256', 'RS256'] },
    message: /^algorithms: HS and asymmetric/,
  },
  {
    name: 'short secret',
    options: { secret: 'x'.repeat(31), algorithms: ['HS256'] },
    message: /^secret: HS256 needs .* 32 bytes/,
  },
  {
    name: 'secret short for HS512',
    options: { secret: 'x'.repeat(48), algorithms: ['HS384', 'HS512'] },
    message: /^secret: HS512 needs .* 64 bytes/,
  },
  {
    name: 'short secret bytes',
    options: { secret: new Uint8Array(16), algorithms: ['HS256'] },
    message: /^secret:/,
  },
  {
    name: 'secret with RS256',
    options: { secret, algorithms: ['RS256'] },
    message: /^secret: only with HS/,
  },
  {
    name: 'HS256 with publicKey',
    options: { publicKey: rs.publicPem, algorithms: ['HS256'] },
    message: /^publicKey: HS algorithms need a secret/,
  },
  {
    name: 'HS256 with jwksUrl',
    options: { jwksUrl: 'https://id.example/jwks', algorithms: ['HS256'] },
    message: /^jwksUrl: HS/,
  },
  {
    name: 'publicKey with two algorithms',
    options: { publicKey: rs.publicPem, algorithms: ['RS256', 'PS256'] },
    message: /^publicKey: .*exactly one algorithm/,
  },
  {
    name: 'RSA 1024',
    options: { publicKey: rsa1024, algorithms: ['RS256'] },
    message: /^publicKey: RSA .* 2048/,
  },
  {
    name: 'RSA exponent 1',
    options: { publicKey: exponentOne, algorithms: ['RS256'] },
    message: /^publicKey: the RSA public exponent/,
  },
  {
    name: 'RSA key for ES256',
    options: { publicKey: rs.publicPem, algorithms: ['ES256'] },
    message: /^publicKey: ES256 needs an EC key/,
  },
  {
    name: 'P-384 key for ES256',
    options: { publicKey: p384, algorithms: ['ES256'] },
    message: /^publicKey: ES256 needs an EC key/,
  },
  {
    name: 'EC key for RS256',
    options: { publicKey: es.publicPem, algorithms: ['RS256'] },
    message: /^publicKey: RS256 needs an RSA key/,
  },
  {
    name: 'EC key for EdDSA',
    options: { publicKey: es.publicPem, algorithms: ['EdDSA'] },
    message: /^publicKey: EdDSA needs an Ed25519/,
  },
  {
    name: 'PEM private key',
    options: {
      publicKey: ecPrivate.export({ format: 'pem', type: 'pkcs8' }),
      algorithms: ['ES256'],
    },
    message: /^publicKey: a private key/,
  },
  {
    name: 'KeyObject private key',
    options: { publicKey: ecPrivate, algorithms: ['ES256'] },
    message: /^publicKey: a private key/,
  },
  {
    name: 'CryptoKey private key',
    options: { publicKey: es.privateKey, algorithms: ['ES256'] },
    message: /^publicKey: a private key/,
  },
  {
    name: 'PEM garbage',
    options: {
      publicKey: '-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----',
      algorithms: ['ES256'],
    },
    message: /^publicKey: not a PEM/,
  },
  {
    name: 'JWK use enc',
    options: { publicKey: { ...es.publicJwk, use: 'enc' }, algorithms: ['ES256'] },
    message: /^publicKey: the JWK is not for sig/,
  },
  {
    name: 'JWK other alg',
    options: { publicKey: { ...es.publicJwk, alg: 'ES384' }, algorithms: ['ES256'] },
    message: /^publicKey: the JWK's alg/,
  },
  {
    name: 'JWK key_ops sign only',
    options: { publicKey: { ...es.publicJwk, key_ops: ['sign'] }, algorithms: ['ES256'] },
    message: /^publicKey: the JWK key_ops/,
  },
  {
    name: 'JWK oct',
    options: { publicKey: { kty: 'oct', k: 'c2VjcmV0' }, algorithms: ['ES256'] },
    message: /^publicKey: the JWK is not a public key/,
  },
  {
    name: 'JWK with d',
    options: { publicKey: { ...es.publicJwk, d: 'AAAA' }, algorithms: ['ES256'] },
    message: /^publicKey: the JWK is not a public key/,
  },
  {
    name: 'JWK invalid',
    options: { publicKey: { kty: 'EC', crv: 'P-256' }, algorithms: ['ES256'] },
    message: /^publicKey: not a valid JWK/,
  },
  {
    name: 'publicKey a number',
    options: { publicKey: 42, algorithms: ['ES256'] },
    message: /^publicKey:/,
  },
  {
    name: 'jwksUrl not a URL',
    options: { jwksUrl: 'not a url', algorithms: ['ES256'] },
    message: /^jwksUrl: not a URL/,
  },
  {
    name: 'jwksUrl plain http',
    options: { jwksUrl: 'http://id.example/jwks', algorithms: ['ES256'] },
    message: /^jwksUrl: must be https/,
  },
  {
    name: 'jwks without jwksUrl',
    options: { publicKey: es.publicPem, jwks: {}, algorithms: ['ES256'] },
    message: /^jwks: only with jwksUrl or discovery/,
  },
  {
    name: 'jwks timeout 0',
    options: {
      jwksUrl: 'https://id.example/jwks',
      jwks: { timeoutDuration: 0 },
      algorithms: ['ES256'],
    },
    message: /^jwks\.timeoutDuration:/,
  },
  {
    name: 'jwks unknown key',
    options: { jwksUrl: 'https://id.example/jwks', jwks: { ttl: 1 }, algorithms: ['ES256'] },
    message: /^jwks:/,
  },
  {
    name: 'getKey not a function',
    options: { getKey: 'kid', algorithms: ['ES256'] },
    message: /^getKey: must be a function/,
  },
  {
    name: 'isRevoked not a function',
    options: { secret, algorithms: ['HS256'], isRevoked: true },
    message: /^isRevoked: must be a function/,
  },
  {
    name: 'maxTokenBytes 0',
    options: { secret, algorithms: ['HS256'], maxTokenBytes: 0 },
    message: /^maxTokenBytes:/,
  },
  {
    name: 'maxTokenBytes fractional',
    options: { secret, algorithms: ['HS256'], maxTokenBytes: 1000.5 },
    message: /^maxTokenBytes:/,
  },
  {
    name: 'maxTokenBytes a string',
    options: { secret, algorithms: ['HS256'], maxTokenBytes: '8k' },
    message: /^maxTokenBytes:/,
  },
  {
    name: 'clockTolerance negative',
    options: { secret, algorithms: ['HS256'], clockTolerance: -1 },
    message: /^clockTolerance:/,
  },
  {
    name: 'clockTolerance an hour',
    options: { secret, algorithms: ['HS256'], clockTolerance: 3600 },
    message: /^clockTolerance:/,
  },
  {
    name: 'maxTokenAge 0',
    options: { secret, algorithms: ['HS256'], maxTokenAge: 0 },
    message: /^maxTokenAge:/,
  },
  {
    name: 'issuer empty',
    options: { secret, algorithms: ['HS256'], issuer: '' },
    message: /^issuer:/,
  },
  {
    name: 'audience empty list',
    options: { secret, algorithms: ['HS256'], audience: [] },
    message: /^audience:/,
  },
  {
    name: 'cookie name with ;',
    options: { secret, algorithms: ['HS256'], cookie: 'a;b' },
    message: /^cookie: must be a cookie name/,
  },
  {
    name: 'realm with a newline',
    options: { secret, algorithms: ['HS256'], realm: 'a\nb' },
    message: /^realm: must be printable/,
  },
  {
    name: 'cache true',
    options: { secret, algorithms: ['HS256'], cache: true },
    message: /^cache:/,
  },
  {
    name: 'cache max 0',
    options: { secret, algorithms: ['HS256'], cache: { max: 0 } },
    message: /^cache/,
  },
  {
    name: 'unknown option (typo)',
    options: { secret, algorithms: ['HS256'], audiance: 'x' },
    message: /audiance/,
  },
  {
    name: 'capability unknown key',
    options: { secret, algorithms: ['HS256'], capability: { claims: 'x' } },
    message: /^capability/,
  },
  {
    name: 'capability adminRole not a role',
    options: { secret, algorithms: ['HS256'], capability: { adminRole: 'owner' } },
    message: /^capability\.adminRole/,
  },
]

t.test('registration refuses misuse with KH_INVALID_OPTIONS naming the option', async (t) => {
  for (const row of rows) {
    await t.rejects(
      createAuthenticator(row.options as unknown as KeyholeOptions),
      {
        name: 'ConfigurationError',
        code: 'KH_INVALID_OPTIONS',
        statusCode: 500,
        message: row.message,
      },
      row.name,
    )
  }
})

t.test('every key form is accepted and verifies', async (t) => {
  const forms: [string, KeyholeOptions, string][] = [
    [
      'RS256 PEM',
      { publicKey: rs.publicPem, algorithms: ['RS256'] },
      await sign(claims(), rs.privateKey, { alg: 'RS256' }),
    ],
    [
      'RS256 JWK',
      { publicKey: rs.publicJwk, algorithms: ['RS256'] },
      await sign(claims(), rs.privateKey, { alg: 'RS256' }),
    ],
    [
      'ES256 CryptoKey',
      { publicKey: es.publicKey, algorithms: ['ES256'] },
      await sign(claims(), es.privateKey, { alg: 'ES256' }),
    ],
    [
      'ES256 KeyObject',
      { publicKey: KeyObject.from(es.publicKey as never), algorithms: ['ES256'] },
      await sign(claims(), es.privateKey, { alg: 'ES256' }),
    ],
    [
      'EdDSA PEM',
      { publicKey: ed.publicPem, algorithms: ['EdDSA'] },
      await sign(claims(), ed.privateKey, { alg: 'EdDSA' }),
    ],
    [
      'HS256 bytes',
      { secret: new TextEncoder().encode(secret), algorithms: ['HS256'] },
      await sign(claims()),
    ],
    [
      'HS384 of two',
      { secret: secret.repeat(2), algorithms: ['HS256', 'HS384'] },
      await sign(claims(), secret.repeat(2), { alg: 'HS384' }),
    ],
    [
      'HS256 of two',
      { secret: secret.repeat(2), algorithms: ['HS256', 'HS384'] },
      await sign(claims(), secret.repeat(2)),
    ],
  ]
  for (const [name, options, token] of forms) {
    const authenticator = await createAuthenticator({ ...options, issuer, audience })
    const { capability } = await authenticator.authenticate({ authorization: `Bearer ${token}` })
    t.equal(capability.subject, 'user-1', name)
  }
})

t.test('the caller’s options object is not mutated, nor the secret buffer', async (t) => {
  function deepFreeze<T>(value: T): T {
    if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
      for (const inner of Object.values(value)) deepFreeze(inner)
      Object.freeze(value)
    }
    return value
  }
  const bytes = new TextEncoder().encode(secret)
  const options = deepFreeze({
    secret: bytes,
    algorithms: ['HS256' as const],
    issuer: [issuer],
    audience,
    cache: { max: 10 },
    capability: { roles: ['member', 'admin'] },
  })
  const snapshot = JSON.stringify(options)
  const authenticator = await createAuthenticator(options)
  t.equal(JSON.stringify(options), snapshot)
  t.equal(Buffer.from(bytes).toString(), secret, 'the caller’s secret bytes are untouched')
  t.ok(Object.isFrozen(authenticator))
  t.notOk(JSON.stringify(authenticator).includes(secret), 'no secret on the authenticator')
  t.ok(await authenticator.authenticate({ authorization: `Bearer ${await sign(claims())}` }))
})
