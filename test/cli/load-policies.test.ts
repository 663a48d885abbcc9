/**
 * `--policies MODULE`: what users have. A TypeScript module loads through the application's tsx;
 * where nothing can load it the message says the two ways (the consumer test runs that case from
 * the installed bin under plain Node, with and without tsx in the application). What it exports is
 * made again by this copy's definePolicies: another copy's guards become this copy's (a module
 * tsx loads imports keyhole anew), every other key of a table policy passes on, and what
 * definePolicies refuses is refused, naming the module.
 */
import t from 'tap'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadFailure, loadPolicies } from '../../src/cli/load-policies.ts'
import { isGuard } from '../../src/sql/guard.ts'
import type { Policies } from '../../src/sql/policies.ts'

const inRepo = fileURLToPath(new URL('./helpers/literal-policies.ts', import.meta.url))
const ownModule = fileURLToPath(new URL('./helpers/policies.js', import.meta.url))
const outside = await mkdtemp(join(tmpdir(), 'keyhole-policies-'))
t.teardown(() => import('node:fs/promises').then((fs) => fs.rm(outside, { recursive: true })))

t.test('a .ts module of an application with tsx: through tsx', async (t) => {
  const policies = await loadPolicies(inRepo)
  t.same(Object.keys(policies.tables), ['app.notes'])
  t.same(policies.roles, ['member'])
  t.ok(isGuard(policies.tables['app.notes']!.read), "the other copy's guard, made again here")
})

t.test('JavaScript, and TypeScript where no tsx is installed: as Node imports it', async (t) => {
  // Another copy's guard (see literal-policies.ts), in text that is JavaScript and TypeScript.
  const table = (exported: string) =>
    `class Guard { constructor(node) { this.id = -1; this.node = node } }\n${exported}{ tables: ` +
    `{ 'app.notes': { read: new Guard({ kind: 'isSubject', column: 'author' }) } }, roles: [] }`
  const cases: [string, string][] = [
    ['default.mjs', table('export default ')],
    ['named.js', table('export const policies = ')],
    // This process runs TypeScript (tap's loader), as `node --import tsx keyhole …` would.
    ['typed.ts', table('export const policies: object = ')],
  ]
  const loaded = async (file: string, name: string) => {
    const { tables } = await loadPolicies(file)
    t.same(Object.keys(tables), ['app.notes'], name)
    t.same(tables['app.notes']!.read!.node, { kind: 'isSubject', column: 'author' }, name)
  }
  await writeFile(join(outside, 'package.json'), '{ "type": "module" }')
  for (const [name, text] of cases) {
    await writeFile(join(outside, name), text)
    await loaded(join(outside, name), name)
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
    await loaded(join(app, 'policies.ts'), `tsx ${version}`)
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

t.test(
  "another copy's policies: made again by this copy's definePolicies, every key passed on",
  async (t) => {
    // definePolicies' output of another copy: frozen, tables without a prototype, its own Guard.
    const write = async (name: string, policy: string) => {
      const file = join(outside, name)
      await writeFile(
        file,
        `import { policies as own } from ${JSON.stringify(ownModule)}
class Guard { constructor(node) { this.id = -1; this.node = node; Object.freeze(this) } }
const foreign = (g) => new Guard(g.node)
const { read, insert } = own.tables['app.notes']
const tables = Object.assign(Object.create(null), { 'app.notes': Object.freeze(${policy}) })
export const policies = Object.freeze({ tables: Object.freeze(tables), roles: own.roles })`,
      )
      return file
    }
    const adopted = await loadPolicies(
      await write(
        'copy.mjs',
        "{ read: foreign(read), insert, system: Object.freeze(['read']), columns: { read: { member: ['body'] } }, encrypted: { rowKey: 'id', columns: [{ column: 'body' }] } }",
      ),
    )
    const notes = adopted.tables['app.notes']!
    t.ok(isGuard(notes.read), "the other copy's guard is this copy's")
    const own = ((await import(ownModule)) as { policies: Policies }).policies.tables['app.notes']!
    t.not(notes.read, own.read, 'a new guard')
    t.equal(notes.read!.node, own.read!.node, 'of the same tree')
    t.equal(notes.insert, own.insert, "this copy's own guard, as it is")
    t.same(notes.system, ['read'], 'a key that is not a guard passes on')
    t.same(notes.columns, { read: { member: ['body'] } }, 'and another')
    t.same(notes.encrypted, { rowKey: 'id', columns: [{ column: 'body' }] }, 'and another')
    t.same(adopted.roles, ['member'])
    t.ok(Object.isFrozen(notes), "definePolicies' output")

    // A key this copy does not know (another version's option) is refused, not dropped: dropping
    // it could apply weaker policies than the application declares.
    const refused: [string, string, RegExp][] = [
      [
        'future.mjs',
        "{ read: foreign(read), future: ['a'] }",
        /future\.mjs: Unknown operation "future" in the policy of table app\.notes/,
      ],
      ['empty.mjs', '{}', /empty\.mjs: The policy of table app\.notes must name at least one/],
      [
        'node.mjs',
        "{ read: { kind: 'isSubject', column: 'author' } }",
        /node\.mjs: The read policy of table app\.notes is not a guard$/,
      ],
      [
        'instance.mjs',
        '{ read: new (class Other { node = read.node })() }',
        /instance\.mjs: The read policy of table app\.notes is not a guard$/,
      ],
    ]
    for (const [name, policy, message] of refused) {
      await t.rejects(loadPolicies(await write(name, policy)), {
        code: 'KH_INVALID_OPTIONS',
        message,
      })
    }
  },
)
