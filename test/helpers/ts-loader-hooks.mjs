// The load hook of ts-loader.mjs: a .ts file becomes an ES module by TypeScript's own
// transpileModule, as ts-node (transpile-only) emits it, so coverage maps to the same lines. The
// output is cached on disk by the source's hash, so each file is transpiled once per change rather
// than once per test process, and a process whose files are all cached never loads TypeScript.
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const compilerOptions = {
  target: 'ES2022',
  module: 'ESNext',
  verbatimModuleSyntax: true,
  sourceMap: true,
  inlineSources: true,
}
const version = JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version
const cacheDir = join(tmpdir(), `keyhole-ts-${userInfo().uid}`)
mkdirSync(cacheDir, { recursive: true })
let ts

function transpile(fileName, text) {
  ts ??= require('typescript')
  const { outputText, sourceMapText } = ts.transpileModule(text, {
    fileName,
    compilerOptions: ts.convertCompilerOptionsFromJson(compilerOptions, '.').options,
  })
  const map = JSON.parse(sourceMapText)
  map.sources = [fileName]
  map.file = fileName
  const inline = Buffer.from(JSON.stringify(map)).toString('base64')
  return outputText.replace(
    /\/\/# sourceMappingURL=.*$/m,
    `//# sourceMappingURL=data:application/json;charset=utf-8;base64,${inline}`,
  )
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !/\.[cm]?ts$/.test(new URL(url).pathname)) {
    return nextLoad(url, context)
  }
  const fileName = fileURLToPath(url)
  const text = readFileSync(fileName, 'utf8')
  const key = createHash('sha256')
    .update(`${version}\0${JSON.stringify(compilerOptions)}\0${fileName}\0${text}`)
    .digest('hex')
  const cached = join(cacheDir, `${key}.js`)
  let source
  try {
    source = readFileSync(cached, 'utf8')
  } catch {
    source = transpile(fileName, text)
    const temporary = `${cached}.${process.pid}.${Math.random().toString(36).slice(2)}`
    writeFileSync(temporary, source)
    renameSync(temporary, cached)
  }
  return { format: 'module', source, shortCircuit: true }
}
