/**
 * The two entry points stay apart: nothing `keyhole/express` loads (itself and every relative
 * import, transitively, types included) imports Fastify, and nothing `keyhole/fastify` loads
 * imports Express. Read from the sources, so a type-only import counts too: it would make the
 * published declarations need the other framework's types; and checked at run time, in a child
 * process that loads the entry and lists the (CommonJS) packages in its module cache.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { uncoveredChildEnv } from '../helpers/child-env.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** Every module specifier in `source`: static and dynamic imports, re-exports. */
function specifiers(source: string): string[] {
  const found: string[] = []
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) found.push(match[1] as string)
  }
  return found
}

/** The packages (bare specifiers) that `entry` and its relative imports reach. */
async function packagesOf(entry: string): Promise<{ files: number; packages: Set<string> }> {
  const seen = new Set<string>()
  const packages = new Set<string>()
  const queue = [resolve(root, entry)]
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    for (const specifier of specifiers(await readFile(file, 'utf8'))) {
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier))
      else
        packages.add(
          specifier.startsWith('@')
            ? specifier.split('/').slice(0, 2).join('/')
            : (specifier.split('/')[0] as string),
        )
    }
  }
  return { files: seen.size, packages }
}

t.test('keyhole/express loads nothing of Fastify', async (t) => {
  const { files, packages } = await packagesOf('plugins/express.ts')
  t.ok(files > 20, `followed ${files} files`)
  t.ok(packages.has('express'), 'the walk sees the Express (type) import')
  for (const name of packages) t.notMatch(name, /fastify/, name)
})

t.test('keyhole/fastify loads nothing of Express', async (t) => {
  const { files, packages } = await packagesOf('plugins/fastify.ts')
  t.ok(files > 20, `followed ${files} files`)
  t.ok(packages.has('fastify'), 'the walk sees the Fastify import')
  t.notOk(packages.has('express'))
})

t.test('only keyhole/kysely loads Kysely (an optional peer)', async (t) => {
  for (const entry of ['src/index.ts', 'plugins/fastify.ts', 'plugins/express.ts']) {
    t.notOk((await packagesOf(entry)).packages.has('kysely'), entry)
  }
  t.ok((await packagesOf('plugins/kysely.ts')).packages.has('kysely'), 'the walk sees it')
})

t.test('the specifier reader sees every import form', async (t) => {
  const source = [
    "import a from 'a'",
    "import type { B } from '@scope/b/deep'",
    "import {\n  c,\n  type C,\n} from './c.ts'",
    "export { d } from 'd'",
    "export type { E } from 'e'",
    "import 'f'",
    "await import('g')",
  ].join('\n')
  t.same(specifiers(source).sort(), ['./c.ts', '@scope/b/deep', 'a', 'd', 'e', 'f', 'g'])
})

/** The packages in the CommonJS module cache of a process that imported `entry`. */
async function loadedBy(entry: string): Promise<string[]> {
  const script = `
    const { createRequire } = await import('node:module')
    await import(${JSON.stringify(`./${entry}`)})
    const files = Object.keys(createRequire(import.meta.url).cache)
    const names = files.map((file) => file.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/)?.[1])
    console.log(JSON.stringify([...new Set(names.filter(Boolean))]))
  `
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: root, env: uncoveredChildEnv(process.env) },
  )
  return JSON.parse(stdout) as string[]
}

t.test('at run time: the Express entry loads neither Fastify nor Express itself', async (t) => {
  const loaded = await loadedBy('plugins/express.ts')
  t.ok(loaded.includes('tsx'), 'the cache lists what was loaded')
  t.notOk(loaded.includes('pg'), 'pg loads on first use only (src/db/pg-driver.ts)')
  t.same(
    loaded.filter((name) => /fastify|express/.test(name)),
    [],
  )
  const fastify = await loadedBy('plugins/fastify.ts')
  t.ok(fastify.includes('fastify-plugin'), 'the Fastify entry loads its own')
  t.notOk(fastify.includes('express'))
})
