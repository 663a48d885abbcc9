import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigurationError } from '../errors.ts'
import { Guard, isGuard, type GuardNode } from '../sql/guard.ts'
import { definePolicies, type Policies, type PolicyDefinitions } from '../sql/policies.ts'
import { UsageError } from './io.ts'

const typescript = /\.[cm]?ts$/

/** The commands' help line on MODULE. */
export const policiesModuleHelp =
  "MODULE exports `policies` (or a default export) made with definePolicies(); a .ts, .mts or .cts\nMODULE loads through the application's tsx (npm install --save-dev tsx), or compile it first."

interface TsxApi {
  tsImport(specifier: string, parentURL: string): Promise<unknown>
}

/**
 * tsx's import API (tsx 4.8 or later), when the application that holds `file` installed it: the
 * ESM build its exports map names (the CommonJS one cannot register tsx's loader from here).
 */
async function tsxFor(file: string): Promise<TsxApi | undefined> {
  let manifest: string
  try {
    manifest = createRequire(file).resolve('tsx/package.json')
  } catch {
    return undefined
  }
  const { exports } = JSON.parse(await readFile(manifest, 'utf8')) as {
    exports?: { './esm/api'?: { import?: { default?: string } } }
  }
  const api = exports?.['./esm/api']?.import?.default
  if (api === undefined) return undefined
  return (await import(pathToFileURL(join(dirname(manifest), api)).href)) as TsxApi
}

/**
 * Imports the module `path` (`what` names it in messages). A TypeScript module (.ts, .mts, .cts)
 * is imported through tsx when the application installed it (as `tsx src/main.ts` would run it),
 * else as Node imports it.
 */
export async function loadModule(
  path: string,
  what = 'policies module',
): Promise<Record<string, unknown>> {
  const file = resolve(path)
  const url = pathToFileURL(file).href
  try {
    const tsx = typescript.test(file) ? await tsxFor(file) : undefined
    return (await (tsx === undefined ? import(url) : tsx.tsImport(url, import.meta.url))) as Record<
      string,
      unknown
    >
  } catch (error) {
    throw new UsageError(loadFailure(path, error, what))
  }
}

/**
 * `value` with every guard of another copy of keyhole made again as one of this copy's. Arrays
 * and plain objects are copied key by key, so every key passes on to definePolicies, which
 * accepts or refuses it; other objects (a guard of this copy, a class instance) pass as they are.
 */
function adopt(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(adopt)
  if (value === null || typeof value !== 'object' || isGuard(value)) return value
  const prototype = Object.getPrototypeOf(value) as object | null
  if (prototype?.constructor?.name === 'Guard' && 'node' in value) {
    return new Guard(value.node as GuardNode)
  }
  if (prototype !== null && prototype !== Object.prototype) return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, adopt(v)]))
}

/**
 * Imports a module and returns its `policies` export (or default export), made again by this
 * copy's `definePolicies`: a .ts module loads through tsx, which imports its `keyhole` anew, and
 * the guarded statements take only guards of their own copy. So the commands accept what
 * `definePolicies` accepts, and a table policy it refuses (a key this keyhole does not know,
 * a table without guards) fails here, naming the module.
 * @throws UsageError when the module does not load or exports no policies; ConfigurationError
 * (definePolicies' code) when its policies are not valid here.
 */
export async function loadPolicies(path: string): Promise<Policies> {
  const module = await loadModule(path)
  const policies = (module.policies ?? module.default) as Policies | undefined
  if (policies === null || typeof policies !== 'object' || typeof policies.tables !== 'object') {
    throw new UsageError(`${path} exports no policies (export const policies = definePolicies(…))`)
  }
  try {
    return definePolicies(adopt(policies.tables) as PolicyDefinitions<unknown>)
  } catch (error) {
    // definePolicies throws only ConfigurationErrors.
    const e = error as ConfigurationError & {
      code: ConstructorParameters<typeof ConfigurationError>[0]
    }
    throw new ConfigurationError(e.code, `${path}: ${e.message}`, error)
  }
}

/**
 * Why the module `path` did not load, in one line; for a TypeScript module Node cannot import (no
 * tsx in the application, a Node without type stripping), the two ways to make it load.
 */
export function loadFailure(path: string, error: unknown, what = 'policies module'): string {
  const e = error as { code?: unknown; message?: unknown }
  if (typescript.test(path) && e.code === 'ERR_UNKNOWN_FILE_EXTENSION') {
    return (
      `cannot load the ${what} ${path}: this Node does not run TypeScript. ` +
      'Install tsx in the application (npm install --save-dev tsx), through which keyhole then ' +
      'loads it, or compile the module and pass the .js file'
    )
  }
  return `cannot load the ${what} ${path}: ${String(e.message)}`
}
