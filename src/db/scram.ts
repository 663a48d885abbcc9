/**
 * A SCRAM-SHA-256 password verifier (RFC 5802, RFC 7677), computed here so that `CREATE ROLE …
 * PASSWORD` carries the verifier, never the password: statement logs (`log_statement = 'ddl'`)
 * and `pg_stat_activity` then hold nothing that logs in. PostgreSQL stores such a value as is.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'

const ITERATIONS = 4096

/** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as PostgreSQL stores it. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16)): string {
  // PostgreSQL applies SASLprep; NFKC is its normalisation step (the rest only refuses input).
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, ITERATIONS, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}
