/**
 * The import graph of src/ and plugins/ (what `madge --circular` reports, and the layer rule it
 * cannot): no circle between files, and folders depend one way, along the data flow of
 * docs/DESIGN: a token is verified into a capability (token/ → capability/), the capability
 * conditions SQL (sql/ → capability/), the SQL runs in a database session (db/ → sql/), and
 * http/ wires one request through all of them; the CLI and the public index sit on top, the
 * adapters (plugins/) above everything. A folder imports only the folders listed for it below.
 * Every import counts, `import type` too: a type-only circle still ties two files together.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Where a file sits: its folder under src/ (`sql`, `db`, …), a top-level src file, or `plugins`. */
function layerOf(file: string): string {
  const path = relative(root, file).split('\\').join('/')
  if (path.startsWith('plugins/')) return 'plugins'
  const [, first, second] = path.split('/')
  return second === undefined ? (first as string).replace(/\.ts$/, '') : (first as string)
}

/** Which layers each layer may import (besides itself); anything else is an upward import. */
const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  events: ['errors'],
  metrics: ['errors'],
  capability: ['errors'],
  options: ['errors', 'capability'],
  token: ['errors', 'options', 'capability', 'metrics'],
  sql: ['errors', 'capability', 'metrics', 'encryption'],
  // Encrypted columns: sealed and opened around sql/'s statements, whose handles call them.
  encryption: ['errors', 'capability', 'sql'],
  db: ['errors', 'events', 'capability', 'sql', 'metrics', 'encryption'],
  http: ['errors', 'events', 'options', 'capability', 'token', 'sql', 'db', 'metrics'],
  cli: ['errors', 'options', 'capability', 'sql', 'db', 'testing'],
  index: [
    'errors',
    'events',
    'options',
    'capability',
    'token',
    'sql',
    'db',
    'http',
    'metrics',
    'encryption',
  ],
  testing: ['errors', 'capability', 'sql', 'db', 'encryption'],
  plugins: ['errors', 'events', 'options', 'capability', 'token', 'sql', 'db', 'http', 'index'],
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return path.endsWith('.ts') ? [path] : []
  })
}

/**
 * What a file imports: static, type-only, re-exports, `import('…')` types and literal dynamic
 * imports, read from its syntax tree (ts.preProcessFile's scanner loses imports after a regular
 * expression literal).
 */
function specifiersOf(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest)
  const found: string[] = []
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text)
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push(node.arguments[0].text)
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      found.push(node.argument.literal.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** Each file's relative imports, resolved. */
function importGraph(files: readonly string[]): Map<string, string[]> {
  return new Map(
    files.map((file) => [
      file,
      specifiersOf(file)
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => resolve(dirname(file), spec)),
    ]),
  )
}

/** Every circle, each reported once as the path that closes it (Tarjan's components of size > 1). */
function circles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const found: string[][] = []
  const visit = (node: string) => {
    index.set(node, index.size)
    low.set(node, index.get(node)!)
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (stack.includes(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!))
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = []
      let member: string
      do {
        member = stack.pop()!
        component.push(member)
      } while (member !== node)
      const selfImport = graph.get(node)?.includes(node) === true
      if (component.length > 1 || selfImport) found.push(component.sort())
    }
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node)
  return found
}

const show = (file: string) => relative(root, file).split('\\').join('/')

/** The adapter a plugins/ file belongs to: `kysely` for plugins/kysely.ts and plugins/kysely-vouch.ts. */
const adapterOf = (file: string) => /^plugins\/(\w+)(?:-[\w-]+)?\.ts$/.exec(show(file))?.[1]
const files = [...sourceFiles(join(root, 'src')), ...sourceFiles(join(root, 'plugins'))]
const graph = importGraph(files)

t.test('every relative import names a file that exists', async (t) => {
  const missing = [...graph].flatMap(([file, imports]) =>
    imports.filter((i) => !graph.has(i)).map((i) => `${show(file)} → ${show(i)}`),
  )
  t.same(missing, [])
})

t.test('no circle between files (madge --circular)', async (t) => {
  t.same(
    circles(graph).map((c) => c.map(show)),
    [],
  )
})

t.test('folders import only along the data flow', async (t) => {
  const upward = [...graph].flatMap(([file, imports]) => {
    const from = layerOf(file)
    const allowed = ALLOWED[from]
    if (allowed === undefined) return [`${show(file)}: no layer rule for ${from}`]
    return imports
      .filter((i) => {
        const to = layerOf(i)
        // An adapter may import its own helper files (plugins/kysely.ts → plugins/kysely-vouch.ts).
        if (from === 'plugins') return to === 'plugins' && adapterOf(file) !== adapterOf(i)
        return to !== from && !allowed.includes(to)
      })
      .map((i) => `${show(file)} → ${show(i)}`)
  })
  t.same(upward, [])
})

t.test('src/ never loads a web framework or kysely; an adapter loads only its own', async (t) => {
  const loads = files.flatMap((file) => {
    const adapter = adapterOf(file)
    return specifiersOf(file)
      .filter(
        (spec) => /^(fastify|express|kysely)(\/|$)/.test(spec) && spec.split('/')[0] !== adapter,
      )
      .map((spec) => `${show(file)} → ${spec}`)
  })
  t.same(loads, [])
})

t.test('the checks catch what they are for', async (t) => {
  const a = join(root, 'src/sql/a.ts')
  const b = join(root, 'src/sql/b.ts')
  const c = join(root, 'src/db/c.ts')
  t.same(
    circles(
      new Map([
        [a, [b]],
        [b, [c]],
        [c, [a]],
      ]),
    ),
    [[a, b, c].sort()],
  )
  t.same(circles(new Map([[a, [a]]])), [[a]], 'a file importing itself')
  t.same(
    circles(
      new Map([
        [a, [b]],
        [b, []],
      ]),
    ),
    [],
  )
  t.equal(layerOf(c), 'db')
  t.equal(layerOf(join(root, 'src/errors.ts')), 'errors')
  t.equal(layerOf(join(root, 'plugins/fastify.ts')), 'plugins')
  t.notOk(ALLOWED.sql!.includes('db'), 'sql/ may not import db/')
})
