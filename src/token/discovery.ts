/**
 * Discovery: the key set URL read from the issuer's own metadata, once, at start-up (OpenID
 * Connect Discovery 1.0 §4, RFC 8414 §3). The document is trusted only as far as it agrees with the
 * configuration: its `issuer` must be the configured one exactly (both specifications require the
 * check: a document for another issuer would hand over another issuer's keys), and the key set it
 * names must be fetched over TLS. Anything else fails start-up; nothing falls back to a guess.
 */
import { ConfigurationError } from '../errors.ts'
import { BodyTooLarge, readBounded } from './bounded-body.ts'

const loopback = new Set(['127.0.0.1', 'localhost', '[::1]'])

/** Whether keys or metadata may be fetched from `url`: https, or plain http to this machine only. */
export function isSecureUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && loopback.has(url.hostname))
}

function invalid(message: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError('KH_INVALID_OPTIONS', message, cause)
}

function failed(message: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError('KH_DISCOVERY_FAILED', `discovery: ${message}`, cause)
}

/**
 * The `issuer` option as discovery needs it: one https URL (http on a loopback address) without
 * query or fragment, as OpenID Connect Discovery §2 defines an issuer identifier.
 * @throws ConfigurationError `KH_INVALID_OPTIONS` naming `issuer`
 */
export function discoveryIssuer(issuer: string | readonly string[] | undefined): URL {
  if (typeof issuer !== 'string') {
    throw invalid('issuer: discovery needs exactly one issuer URL')
  }
  let url: URL
  try {
    url = new URL(issuer)
  } catch (error) {
    throw invalid('issuer: not a URL (discovery needs the issuer URL)', error)
  }
  if (!isSecureUrl(url)) {
    throw invalid('issuer: must be https for discovery (http only on a loopback address)')
  }
  if (url.search !== '' || url.hash !== '' || issuer.includes('?') || issuer.includes('#')) {
    throw invalid('issuer: an issuer URL has no query or fragment')
  }
  return url
}

/**
 * The metadata URLs of an issuer, in the order they are tried: OpenID Connect's
 * `<issuer>/.well-known/openid-configuration`, then RFC 8414's
 * `<origin>/.well-known/oauth-authorization-server<path>`.
 */
export function discoveryUrls(issuer: URL): readonly [URL, URL] {
  const path = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '')
  return [
    new URL(`${issuer.origin}${path}/.well-known/openid-configuration`),
    new URL(`${issuer.origin}/.well-known/oauth-authorization-server${path}`),
  ]
}

function withoutSlash(value: string): string {
  return value.endsWith('/') ? value.slice(0, -1) : value
}

/** The document's own issuer, checked against the configured one. */
function assertIssuer(document: Record<string, unknown>, issuer: string, url: URL): void {
  const found = document.issuer
  if (found === issuer) return
  if (typeof found !== 'string') throw failed(`${url} has no issuer`)
  const hint =
    withoutSlash(found) === withoutSlash(issuer)
      ? ' (they differ only by a trailing "/": write issuer exactly as the document does)'
      : ''
  throw failed(
    `${url} names the issuer ${JSON.stringify(found)}, not the configured ${JSON.stringify(issuer)}${hint}`,
  )
}

/** The document's `jwks_uri`, which must be a URL keys may be fetched from. */
function jwksUriOf(document: Record<string, unknown>, url: URL): URL {
  const value = document.jwks_uri
  if (typeof value !== 'string') throw failed(`${url} has no jwks_uri`)
  let jwksUri: URL
  try {
    jwksUri = new URL(value)
  } catch (error) {
    throw failed(`${url}: its jwks_uri is not a URL`, error)
  }
  if (!isSecureUrl(jwksUri)) {
    throw failed(`${url}: its jwks_uri must be https (http only on a loopback address)`)
  }
  return jwksUri
}

async function readDocument(response: Response, url: URL): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = await readBounded(response)
  } catch (error) {
    if (error instanceof BodyTooLarge) throw failed(`${url}: ${error.message}`, error)
    throw failed(`${url}: the answer could not be read in time`, error)
  }
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch (error) {
    throw failed(`${url} did not answer JSON`, error)
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw failed(`${url} did not answer a JSON object`)
  }
  return document as Record<string, unknown>
}

/**
 * Reads the issuer's discovery document and returns its `jwks_uri`. The OpenID Connect document
 * is tried first; RFC 8414's only when that one answers another status than 200. Redirects are not
 * followed. Each fetch may take `timeoutDuration` milliseconds, and the document at most
 * `MAX_METADATA_BYTES` (256 KiB).
 *
 * @example
 * const jwksUrl = await discoverJwksUrl('https://id.example', 5000)
 * @param issuer the `issuer` option, checked by {@link discoveryIssuer}; compared with the
 *   document's as written (`https://id.example` and `https://id.example/` are two issuers)
 * @throws ConfigurationError `KH_DISCOVERY_FAILED`, its message naming the URL and the fault
 */
export async function discoverJwksUrl(
  issuer: string,
  timeoutDuration: number,
  fetchImpl: typeof fetch = fetch,
): Promise<URL> {
  const statuses: string[] = []
  for (const url of discoveryUrls(new URL(issuer))) {
    let response: Response
    try {
      response = await fetchImpl(url, {
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutDuration),
        headers: { accept: 'application/json' },
      })
    } catch (error) {
      throw failed(`${url} could not be fetched within ${timeoutDuration} ms`, error)
    }
    if (response.status !== 200) {
      await response.body?.cancel()
      statuses.push(`${url} answered ${response.status}`)
      continue
    }
    const document = await readDocument(response, url)
    assertIssuer(document, issuer, url)
    return jwksUriOf(document, url)
  }
  throw failed(`no discovery document: ${statuses.join('; ')}`)
}
