import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Policies } from '../sql/policies.ts'
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

/** Imports a module and returns its `policies` export (or default export), from `definePolicies`. */
export async function loadPolicies(path: string): Promise<Policies> {
  const module = await loadModule(path)
  const policies = (module.policies ?? module.default) as Policies | undefined
  if (policies === null || typeof policies !== 'object' || typeof policies.tables !== 'object') {
    throw new UsageError(`${path} exports no policies (export const policies = definePolicies(…))`)
  }
  return policies
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
