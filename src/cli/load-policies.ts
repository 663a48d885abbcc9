import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Policies } from '../sql/policies.ts'
import { UsageError } from './io.ts'

/** Imports a module and returns its `policies` export (or default export), from `definePolicies`. */
export async function loadPolicies(path: string): Promise<Policies> {
  let module: { policies?: unknown; default?: unknown }
  try {
    module = await import(pathToFileURL(resolve(path)).href)
  } catch (error) {
    throw new UsageError(`cannot load the policies module ${path}: ${(error as Error).message}`)
  }
  const policies = (module.policies ?? module.default) as Policies | undefined
  if (policies === null || typeof policies !== 'object' || typeof policies.tables !== 'object') {
    throw new UsageError(`${path} exports no policies (export const policies = definePolicies(…))`)
  }
  return policies
}
