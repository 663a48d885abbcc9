/**
 * The package.json that npm packs, without the `keyhole-source` export condition: it points at
 * ./src/*.ts and ./plugins/*.ts, which the tarball does not hold, so an application (or a
 * TypeScript `customConditions`) that set that condition would resolve `keyhole` to missing files.
 * `prepack` runs `strip` (the original kept beside it), `postpack` runs `restore`; a pack that
 * failed in between is restored by the next `strip` or `restore`, never stripped twice.
 * test/consumer/consumer.test.ts checks the installed manifest.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'

const manifest = 'package.json'
const kept = 'package.json.keyhole-source'

type Exports = Record<string, Record<string, string>>

/** `exports` without the `keyhole-source` condition of any entry point. */
export function withoutSourceCondition(exports: Exports): Exports {
  return Object.fromEntries(
    Object.entries(exports).map(([path, conditions]) => [
      path,
      Object.fromEntries(Object.entries(conditions).filter(([name]) => name !== 'keyhole-source')),
    ]),
  )
}

function restore(): void {
  if (existsSync(kept)) renameSync(kept, manifest)
}

const command = process.argv[2]
if (command === 'strip') {
  restore()
  const text = readFileSync(manifest, 'utf8')
  const json = JSON.parse(text) as { exports: Exports }
  writeFileSync(kept, text)
  writeFileSync(
    manifest,
    `${JSON.stringify({ ...json, exports: withoutSourceCondition(json.exports) }, null, 2)}\n`,
  )
} else if (command === 'restore') {
  restore()
} else {
  console.error('usage: published-manifest.ts strip|restore')
  process.exitCode = 1
}
