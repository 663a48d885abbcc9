import { isIPv4, isIPv6 } from 'node:net'
import { finding, rows, type Check } from './context.ts'

/**
 * Where the runtime connection reaches the server, from `inet_server_addr()`: `null` for a Unix
 * socket, else the server's address as PostgreSQL prints it.
 * - `'socket'` and `'loopback'` (127.0.0.0/8, `::1`, and IPv4-mapped `::ffff:127.x.y.z`) never
 *   leave the machine;
 * - `'network'` is every other address.
 */
export function serverPlace(address: string | null): 'socket' | 'loopback' | 'network' {
  if (address === null) return 'socket'
  const host = address.replace(/\/\d+$/, '').toLowerCase()
  if (isIPv4(host)) return host.startsWith('127.') ? 'loopback' : 'network'
  if (isIPv6(host)) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host)
    if (mapped) return serverPlace(mapped[1]!)
    return host === '::1' ? 'loopback' : 'network'
  }
  return 'network'
}

/**
 * Check 13: the runtime connection is encrypted (`pg_stat_ssl` of the own backend) unless it stays
 * on the machine (a Unix socket or loopback). `checks.tls` decides: `'remote'` (the default) asks
 * for TLS only off the machine, `'always'` on loopback too, `'waived'` never (the adapters log the
 * waiver at start-up).
 * - KH_DB_NOT_ENCRYPTED: the connection to the server is not encrypted.
 *
 * The generated SQL:
 * ```sql
 * SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl,
 *   host(inet_server_addr()) AS address
 * ```
 */
export const checkTls: Check = async ({ db, options }) => {
  if (options.tls === 'waived') return []
  const [row] = await rows<{ ssl: boolean; address: string | null }>(
    db,
    `SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl,
       host(inet_server_addr()) AS address`,
  )
  const { ssl, address } = row!
  const place = serverPlace(address)
  if (ssl || (options.tls === 'remote' && place !== 'network')) return []
  const where = place === 'socket' ? 'a Unix socket' : `${address} (${place})`
  return [
    finding(
      'KH_DB_NOT_ENCRYPTED',
      `the runtime connection to the server at ${where} is not encrypted: the capability, the rows and the password cross it in clear`,
      "connect with TLS and check the server's certificate (sslmode=verify-full with the server's CA; pg: ssl: { ca }), with ssl = on on the server; or, where the network is encrypted otherwise, waive the check with checks.tls: 'waived'",
    ),
  ]
}
