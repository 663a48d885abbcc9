/**
 * The development data key. With the embedded PostgreSQL and no KEYHOLE_DATA_KEY, the invite codes
 * are encrypted with a key generated once per data directory and kept beside the data, as the
 * embedded server's superuser password is: `<DATA_DIR>/data-key` (mode 0600; the directory is
 * git-ignored). Losing it loses the codes, as losing the data would; `--fresh` deletes both.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError, dataKeyPattern } from './config.ts'

export interface DevelopmentDataKey {
  /** The key, base64 (never logged). */
  readonly key: string
  /** Where it is kept. */
  readonly path: string
  /** True when this call generated it (none was kept yet). */
  readonly created: boolean
}

/**
 * The data key kept in `dataDir`, generated (32 random bytes, base64) when there is none.
 * @throws ConfigError when the file holds something that is not a data key (never echoed).
 */
export async function developmentDataKey(dataDir: string): Promise<DevelopmentDataKey> {
  const path = join(dataDir, 'data-key')
  // No file (or none readable): a new key, written only if the file still does not exist ('wx');
  // a write that fails (another start racing, a directory it cannot write) is the start's error.
  const kept = await readFile(path, 'utf8').catch(() => undefined)
  if (kept === undefined) {
    await mkdir(dataDir, { recursive: true })
    const key = randomBytes(32).toString('base64')
    await writeFile(path, `${key}\n`, { mode: 0o600, flag: 'wx' })
    return { key, path, created: true }
  }
  const key = kept.trim()
  if (!dataKeyPattern.test(key)) {
    throw new ConfigError(
      `${path} does not hold a data key (32 bytes as base64): restore it, or start with --fresh`,
    )
  }
  return { key, path, created: false }
}

/** The line main.ts prints when it uses the development key: where it is, never the key. */
export function developmentDataKeyLine({ path, created }: DevelopmentDataKey): string {
  return (
    `KEYHOLE_DATA_KEY is not set: the invite codes are encrypted with the development key ` +
    `${created ? 'generated now and kept' : 'kept'} in ${path} (keep it with the data; ` +
    `set KEYHOLE_DATA_KEY in production)`
  )
}
