/**
 * The error catalogue, walked code by code: status, message, class, the `{ statusCode, error,
 * message, code }` body and the RFC 6750 `WWW-Authenticate` header. The error table of
 * docs/errors.md is the same table.
 */
import t from 'tap'
import {
  BadRequest,
  CapabilityDenied,
  ColumnDenied,
  ConfigurationError,
  Conflict,
  errorCatalogue,
  Forbidden,
  InsufficientScope,
  InsecureDatabase,
  isKeyholeError,
  KeyholeError,
  NotFound,
  ServiceUnavailable,
  SessionDirty,
  DatabaseFault,
  DecryptionFailed,
  TokenError,
  type KeyholeErrorCode,
} from '../src/errors.ts'

type TokenCode = ConstructorParameters<typeof TokenError>[0]
type ConfigurationCode = ConstructorParameters<typeof ConfigurationError>[0]

const finding = { code: 'KH_DB_SUPERUSER', message: 'the runtime role is a superuser', fix: 'x' }

/** How to raise each code, and what it must look like. */
const catalogue: Record<
  KeyholeErrorCode,
  { make: () => KeyholeError; status: number; error: string; class: Function }
> = {
  KH_INVALID_OPTIONS: config('KH_INVALID_OPTIONS'),
  KH_INVALID_IDENTIFIER: config('KH_INVALID_IDENTIFIER'),
  KH_NO_POLICY: config('KH_NO_POLICY'),
  KH_DISCOVERY_FAILED: config('KH_DISCOVERY_FAILED'),
  KH_JWKS_FAILED: config('KH_JWKS_FAILED'),
  KH_SYSTEM_NOT_DECLARED: config('KH_SYSTEM_NOT_DECLARED'),
  KH_SYSTEM_IN_REQUEST: config('KH_SYSTEM_IN_REQUEST'),
  KH_UNGUARDED_SQL: config('KH_UNGUARDED_SQL'),
  KH_DATA_KEY_MISSING: config('KH_DATA_KEY_MISSING'),
  KH_ENCRYPTED_COLUMN: config('KH_ENCRYPTED_COLUMN'),
  KH_DECRYPT_FAILED: {
    make: () => new DecryptionFailed(),
    status: 500,
    error: 'Internal Server Error',
    class: DecryptionFailed,
  },
  KH_INSECURE_DATABASE: {
    make: () => new InsecureDatabase([finding]),
    status: 500,
    error: 'Internal Server Error',
    class: InsecureDatabase,
  },
  KH_TOKEN_MISSING: token('KH_TOKEN_MISSING'),
  KH_TOKEN_MALFORMED: token('KH_TOKEN_MALFORMED'),
  KH_TOKEN_AMBIGUOUS: token('KH_TOKEN_AMBIGUOUS'),
  KH_TOKEN_TOO_LARGE: token('KH_TOKEN_TOO_LARGE'),
  KH_TOKEN_ALGORITHM: token('KH_TOKEN_ALGORITHM'),
  KH_TOKEN_SIGNATURE: token('KH_TOKEN_SIGNATURE'),
  KH_TOKEN_KEY_UNKNOWN: token('KH_TOKEN_KEY_UNKNOWN'),
  KH_TOKEN_EXPIRED: token('KH_TOKEN_EXPIRED'),
  KH_TOKEN_CLAIM: token('KH_TOKEN_CLAIM'),
  KH_TOKEN_PERMISSIONS: token('KH_TOKEN_PERMISSIONS'),
  KH_TOKEN_REVOKED: token('KH_TOKEN_REVOKED'),
  KH_TOKEN_SCOPE: token('KH_TOKEN_SCOPE'),
  KH_KEYS_UNAVAILABLE: {
    make: () => new TokenError('KH_KEYS_UNAVAILABLE'),
    status: 503,
    error: 'Service Unavailable',
    class: TokenError,
  },
  KH_UNAVAILABLE: {
    make: () => new ServiceUnavailable(),
    status: 503,
    error: 'Service Unavailable',
    class: ServiceUnavailable,
  },
  KH_SESSION_DIRTY: {
    make: () => new SessionDirty(),
    status: 500,
    error: 'Internal Server Error',
    class: SessionDirty,
  },
  KH_DATABASE_ERROR: {
    make: () => new DatabaseFault(),
    status: 500,
    error: 'Internal Server Error',
    class: DatabaseFault,
  },
  KH_FORBIDDEN: { make: () => new Forbidden(), status: 403, error: 'Forbidden', class: Forbidden },
  KH_INSUFFICIENT_SCOPE: {
    make: () => new InsufficientScope(['forum:write']),
    status: 403,
    error: 'Forbidden',
    class: InsufficientScope,
  },
  KH_CAPABILITY_DENIED: {
    make: () => new CapabilityDenied({ table: 'posts', operation: 'update', visible: true }),
    status: 403,
    error: 'Forbidden',
    class: CapabilityDenied,
  },
  KH_COLUMN_DENIED: {
    make: () => new ColumnDenied({ table: 'groups', column: 'invite_code', verb: 'read' }),
    status: 403,
    error: 'Forbidden',
    class: ColumnDenied,
  },
  KH_NOT_FOUND: { make: () => new NotFound(), status: 404, error: 'Not Found', class: NotFound },
  KH_CONFLICT: { make: () => new Conflict(), status: 409, error: 'Conflict', class: Conflict },
  KH_BAD_REQUEST: {
    make: () => new BadRequest(),
    status: 400,
    error: 'Bad Request',
    class: BadRequest,
  },
}

function token(code: TokenCode) {
  return { make: () => new TokenError(code), status: 401, error: 'Unauthorized', class: TokenError }
}

function config(code: ConfigurationCode) {
  return {
    make: () => new ConfigurationError(code, 'Invalid option x'),
    status: 500,
    error: 'Internal Server Error',
    class: ConfigurationError,
  }
}

t.test('every code of the catalogue, one by one', async (t) => {
  t.same(Object.keys(catalogue).sort(), Object.keys(errorCatalogue).sort(), 'the table is complete')
  for (const [code, expected] of Object.entries(catalogue)) {
    const error = expected.make()
    t.equal(error.code, code, code)
    t.equal(error.statusCode, expected.status, `${code} status`)
    t.equal(error.error, expected.error, `${code} reason phrase`)
    t.ok(error instanceof expected.class, `${code} class`)
    t.ok(error instanceof KeyholeError && error instanceof Error, `${code} base classes`)
    t.ok(isKeyholeError(error), `${code} isKeyholeError`)
    t.equal(error.name, expected.class.name, `${code} name`)
    t.match(error.stack, new RegExp(`^${expected.class.name}: `), `${code} stack names the class`)
    t.same(
      error.toJSON(),
      { statusCode: expected.status, error: expected.error, message: error.message, code },
      `${code} body`,
    )
    t.same(JSON.parse(JSON.stringify(error)), error.toJSON(), `${code} serialises to its body`)
  }
})

t.test('messages: the catalogue text, except where the caller words it', async (t) => {
  for (const [code, expected] of Object.entries(catalogue)) {
    const error = expected.make()
    if (error instanceof ConfigurationError) t.equal(error.message, 'Invalid option x', code)
    else if (error instanceof CapabilityDenied) {
      t.equal(error.message, 'The capability does not allow update on posts', code)
    } else if (error instanceof ColumnDenied) {
      t.equal(error.message, 'The capability may not read the column invite_code of groups', code)
    } else if (error instanceof InsecureDatabase) t.match(error.message, /refuses to start/, code)
    else t.equal(error.message, errorCatalogue[code as KeyholeErrorCode].message, code)
  }
  t.equal(new NotFound({ message: 'No such thread' }).message, 'No such thread')
  t.equal(
    new BadRequest({ message: 'groupId must be a UUID' }).toJSON().message,
    'groupId must be a UUID',
  )
})

const bearer = (code: Exclude<TokenCode, 'KH_TOKEN_MISSING' | 'KH_KEYS_UNAVAILABLE'>) =>
  `Bearer realm="keyhole", error="${errorCatalogue[code].bearer}", error_description="${errorCatalogue[code].message}"`

t.test('401: WWW-Authenticate per RFC 6750 §3', async (t) => {
  t.same(
    new TokenError('KH_TOKEN_MISSING').headers,
    {
      'www-authenticate': 'Bearer realm="keyhole"',
    },
    'no token sent: no error attribute',
  )
  const sent = Object.keys(errorCatalogue).filter(
    (code) => code.startsWith('KH_TOKEN_') && code !== 'KH_TOKEN_MISSING',
  ) as Exclude<TokenCode, 'KH_TOKEN_MISSING' | 'KH_KEYS_UNAVAILABLE'>[]
  t.equal(sent.length, 11)
  for (const code of sent) {
    t.same(new TokenError(code).headers, { 'www-authenticate': bearer(code) }, code)
  }
  t.match(bearer('KH_TOKEN_EXPIRED'), /error="invalid_token"/)
  t.match(bearer('KH_TOKEN_AMBIGUOUS'), /error="invalid_request"/, 'two tokens: invalid_request')
})

t.test('the realm is configurable and quoted', async (t) => {
  t.same(new TokenError('KH_TOKEN_MISSING', { realm: 'forum' }).headers, {
    'www-authenticate': 'Bearer realm="forum"',
  })
  t.same(new TokenError('KH_TOKEN_MISSING', { realm: 'a "b" \\c' }).headers, {
    'www-authenticate': 'Bearer realm="a \\"b\\" \\\\c"',
  })
})

t.test('the header never carries a caller-supplied token message', async (t) => {
  const error = new TokenError('KH_TOKEN_MALFORMED', { message: 'custom wording' })
  t.equal(error.message, 'custom wording')
  t.same(error.headers, { 'www-authenticate': bearer('KH_TOKEN_MALFORMED') })
})

t.test('503 for unavailable keys carries no WWW-Authenticate', async (t) => {
  t.same(new TokenError('KH_KEYS_UNAVAILABLE', { realm: 'forum' }).headers, {})
  t.same(new ServiceUnavailable().headers, {})
})

t.test('403 KH_FORBIDDEN: insufficient_scope', async (t) => {
  t.same(new Forbidden().headers, {
    'www-authenticate':
      'Bearer realm="keyhole", error="insufficient_scope", error_description="Insufficient role"',
  })
  t.same(new Forbidden({ realm: 'forum', message: 'Requires "moderator"' }).headers, {
    'www-authenticate':
      'Bearer realm="forum", error="insufficient_scope", error_description="Requires \\"moderator\\""',
  })
})

t.test('403 KH_INSUFFICIENT_SCOPE: insufficient_scope with the required scopes', async (t) => {
  t.same(new InsufficientScope(['forum:write']).headers, {
    'www-authenticate':
      'Bearer realm="keyhole", error="insufficient_scope", error_description="Insufficient scope", scope="forum:write"',
  })
  const scopes = ['forum:read', 'forum:write']
  const error = new InsufficientScope(scopes, { realm: 'forum' })
  scopes.push('admin')
  t.same(error.scopes, ['forum:read', 'forum:write'], 'a frozen copy of the scopes')
  t.ok(Object.isFrozen(error.scopes))
  t.same(error.headers, {
    'www-authenticate':
      'Bearer realm="forum", error="insufficient_scope", error_description="Insufficient scope", scope="forum:read forum:write"',
  })
})

t.test('other errors carry no headers', async (t) => {
  for (const error of [
    new NotFound(),
    new Conflict(),
    new BadRequest(),
    new CapabilityDenied({ table: 't', operation: 'delete', visible: true }),
    new ConfigurationError('KH_NO_POLICY', 'No read policy for table t'),
    new InsecureDatabase([finding]),
  ]) {
    t.same(error.headers, {}, error.code)
  }
})

t.test('CapabilityDenied: visible → 403; invisible → exactly a 404 NotFound', async (t) => {
  const visible = new CapabilityDenied({ table: 'posts', operation: 'delete', visible: true })
  t.match(visible, { statusCode: 403, table: 'posts', operation: 'delete', visible: true })

  const hidden = new CapabilityDenied({ table: 'posts', operation: 'delete', visible: false })
  t.match(hidden, { code: 'KH_CAPABILITY_DENIED', statusCode: 404, error: 'Not Found' })
  t.equal(hidden.message, 'Not found', 'the message does not name the table')
  t.same(hidden.toJSON(), new NotFound().toJSON())
  t.equal(JSON.stringify(hidden), JSON.stringify(new NotFound()), 'identical on the wire')
  t.same(hidden.headers, new NotFound().headers)
})

t.test('cause is kept but never enumerable', async (t) => {
  const jose = new Error('JWSSignatureVerificationFailed: eyJhbGciOi…')
  const errors = [
    new TokenError('KH_TOKEN_SIGNATURE', { cause: jose }),
    new ConfigurationError('KH_INVALID_OPTIONS', 'Invalid option secret', jose),
    new CapabilityDenied({ table: 'posts', operation: 'insert', visible: false, cause: jose }),
    new NotFound({ cause: jose }),
  ]
  for (const error of errors) {
    t.equal(error.cause, jose, error.code)
    t.notOk(Object.keys(error).includes('cause'), `${error.code}: not enumerable`)
    t.notMatch(JSON.stringify(error), /eyJ|JWS/, `${error.code}: not serialised`)
  }
  t.notOk(Object.hasOwn(new NotFound(), 'cause'), 'no cause: no property')
})

t.test('InsecureDatabase: a readable report of every finding', async (t) => {
  const one = new InsecureDatabase([finding])
  t.equal(
    one.message,
    'keyhole refuses to start: the database configuration is insecure (1 finding)\n' +
      '  - KH_DB_SUPERUSER: the runtime role is a superuser\n    fix: x',
  )
  const second = { code: 'KH_DB_NO_FORCE_RLS', message: 'posts: RLS not forced', fix: 'y' }
  const findings = [finding, second]
  const two = new InsecureDatabase(findings)
  t.match(
    two.message,
    /\(2 findings\)\n {2}- KH_DB_SUPERUSER: .*\n {4}fix: x\n {2}- KH_DB_NO_FORCE_RLS/,
  )
  t.same(two.findings, findings)
  t.ok(Object.isFrozen(two.findings))
  findings.pop()
  t.equal(two.findings.length, 2, 'a copy, not the caller’s array')
})
