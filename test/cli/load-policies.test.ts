/**
 * `--policies MODULE`: what users have. A TypeScript module loads through the application's tsx;
 * where nothing can load it the message says the two ways (the consumer test runs that case from
 * the installed bin under plain Node, with and without tsx in the application).
 */
import t from 'tap'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadFailure, loadPolicies } from '../../src/cli/load-policies.ts'

const inRepo = fileURLToPath(new URL('./helpers/literal-policies.ts', import.meta.url))
const outside = await mkdtemp(join(tmpdir(), 'keyhole-policies-'))
t.teardown(() => import('node:fs/promises').then((fs) => fs.rm(outside, { recursive: true })))

t.test('a .ts module of an application with tsx: through tsx', async (t) => {
  const policies = await loadPolicies(inRepo)
  t.same(Object.keys(policies.tables), ['app.notes'])
  t.same(policies.roles, ['member'])
})

t.test('JavaScript, and TypeScript where no tsx is installed: as Node imports it', async (t) => {
  const table = { tables: { 'app.notes': {} }, roles: [] }
  const cases: [string, string][] = [
    ['default.mjs', `export default ${JSON.stringify(table)}`],
    ['named.js', `export const policies = ${JSON.stringify(table)}`],
    // This process runs TypeScript (tap's loader), as `node --import tsx keyhole …` would.
    ['typed.ts', `export const policies: object = ${JSON.stringify(table)}`],
  ]
  await writeFile(join(outside, 'package.json'), '{ "type": "module" }')
  for (const [name, text] of cases) {
    await writeFile(join(outside, name), text)
    t.same((await loadPolicies(join(outside, name))).tables, table.tables, name)
  }
  // A tsx older than 4.8 has no import API: Node imports the module.
  const old: [string, object][] = [
    ['3.14.0', { exports: { '.': './dist/loader.js', './esm': './dist/esm/index.js' } }],
    ['2.1.0', {}],
  ]
  for (const [version, exports] of old) {
    const app = join(outside, `tsx-${version}`)
    await mkdir(join(app, 'node_modules', 'tsx'), { recursive: true })
    await writeFile(
      join(app, 'node_modules', 'tsx', 'package.json'),
      JSON.stringify({ name: 'tsx', version, ...exports }),
    )
    await writeFile(join(app, 'policies.ts'), cases[2]![1])
    t.same((await loadPolicies(join(app, 'policies.ts'))).tables, table.tables, `tsx ${version}`)
  }
})

t.test('what the message says when a module does not load', async (t) => {
  const unknownExtension = Object.assign(new TypeError('Unknown file extension ".ts" for /a'), {
    code: 'ERR_UNKNOWN_FILE_EXTENSION',
  })
  const hint =
    /this Node does not run TypeScript\. Install tsx in the application \(npm install --save-dev tsx\), through which keyhole then loads it, or compile the module and pass the \.js file$/
  const cases: [string, unknown, RegExp][] = [
    ['src/policies.ts', unknownExtension, hint],
    ['src/policies.mts', unknownExtension, hint],
    ['src/policies.cts', unknownExtension, hint],
    ['src/policies.json', unknownExtension, /: Unknown file extension "\.ts" for \/a$/],
    ['src/policies.ts', new SyntaxError('Unexpected token'), /: Unexpected token$/],
  ]
  for (const [path, error, message] of cases) {
    const text = loadFailure(path, error)
    t.ok(text.startsWith(`cannot load the policies module ${path}: `), path)
    t.match(text, message, path)
  }
})

t.test('a module that does not exist or does not load: a usage error naming it', async (t) => {
  await t.rejects(loadPolicies(join(outside, 'missing.ts')), {
    message: new RegExp(`^cannot load the policies module .*missing\\.ts: `),
  })
  await writeFile(join(outside, 'broken.mjs'), 'export const = 1')
  await t.rejects(loadPolicies(join(outside, 'broken.mjs')), {
    message: /^cannot load the policies module .*broken\.mjs: /,
  })
  await writeFile(join(outside, 'nothing.mjs'), 'export const nothing = 1')
  await t.rejects(loadPolicies(join(outside, 'nothing.mjs')), {
    message: /nothing\.mjs exports no policies \(export const policies = definePolicies\(…\)\)$/,
  })
})
