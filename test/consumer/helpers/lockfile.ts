/**
 * A package-lock.json for the consumer application, so that `npm install --offline` needs nothing
 * but tarballs, which `npm ci` left in the npm cache (it does not cache the registry's package
 * documents, without which npm cannot resolve a range offline). The versions are this
 * repository's locked ones, the versions CI tests keyhole with.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'

interface LockEntry {
  version?: string
  resolved?: string
  integrity?: string
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  [key: string]: unknown
}

interface Manifest {
  name: string
  version: string
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  bin?: Record<string, string>
  engines?: Record<string, string>
  license?: string
}

const repoLock = JSON.parse(
  await readFile(new URL('../../../package-lock.json', import.meta.url), 'utf8'),
) as { packages: Record<string, LockEntry> }

/** Where Node finds `name` from the package at lock path `from` ('' for the root). */
function locate(from: string, name: string, packages: Record<string, LockEntry>): string {
  let base = from
  for (;;) {
    const candidate = `${base === '' ? '' : `${base}/`}node_modules/${name}`
    if (packages[candidate] !== undefined) return candidate
    if (base === '') throw new Error(`${name} (needed by ${from || 'the app'}) is not in the lock`)
    const at = base.lastIndexOf('node_modules/')
    base = at <= 0 ? '' : base.slice(0, at - 1)
  }
}

/** The versions this repository locked, for `names`. */
export function lockedVersions(names: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    names.map((name) => [name, repoLock.packages[`node_modules/${name}`]?.version as string]),
  )
}

/**
 * The application's package.json dependencies and lock: keyhole from `tarball` (a path relative to
 * the application) and `others` at this repository's locked versions, with everything they need.
 */
export async function appLock(
  tarball: { path: string; file: string },
  others: readonly string[],
): Promise<{ dependencies: Record<string, string>; lock: object }> {
  const manifest = JSON.parse(
    await readFile(new URL('../../../package.json', import.meta.url), 'utf8'),
  ) as Manifest
  const bytes = await readFile(tarball.file)
  const keyhole: LockEntry = {
    version: manifest.version,
    resolved: `file:${tarball.path}`,
    integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
    license: manifest.license,
    dependencies: manifest.dependencies,
    bin: manifest.bin,
    engines: manifest.engines,
    peerDependencies: manifest.peerDependencies,
    peerDependenciesMeta: manifest.peerDependenciesMeta,
  }
  const dependencies = { keyhole: `file:${tarball.path}`, ...lockedVersions(others) }
  const packages: Record<string, LockEntry> = {
    '': { name: 'consumer-app', dependencies },
    'node_modules/keyhole': keyhole,
  }
  const all: Record<string, LockEntry> = { ...repoLock.packages, 'node_modules/keyhole': keyhole }
  const queue = ['node_modules/keyhole', ...others.map((name) => `node_modules/${name}`)]
  while (queue.length > 0) {
    const path = queue.shift() as string
    const entry = all[path] as LockEntry
    const { dev, devOptional, peer, ...kept } = entry
    void dev
    void peer
    packages[path] = devOptional === true ? { ...kept, optional: true } : kept
    const needs = [
      ...Object.keys(entry.dependencies ?? {}),
      ...Object.keys(entry.optionalDependencies ?? {}),
      ...Object.keys(entry.peerDependencies ?? {}).filter(
        (name) => entry.peerDependenciesMeta?.[name]?.optional !== true,
      ),
    ]
    for (const name of needs) {
      let found: string
      try {
        found = locate(path, name, all)
      } catch (error) {
        // An optional dependency the repository did not install either (another platform's).
        if (name in (entry.optionalDependencies ?? {})) continue
        throw error
      }
      if (packages[found] === undefined && !queue.includes(found)) queue.push(found)
    }
  }
  return {
    dependencies,
    lock: { name: 'consumer-app', lockfileVersion: 3, requires: true, packages },
  }
}
