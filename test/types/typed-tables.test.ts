/**
 * Typed tables (`definePolicies<DB>`, keyhole's `Register` for `request.db`): a file of correct
 * calls compiles with no diagnostic, and a file of mistakes — a wrong table, column or value type
 * in every place a handle takes one — fails with exactly the diagnostics it marks. Each file is
 * compiled under `strict` and `exactOptionalPropertyTypes`, as a user compiles it; both live
 * in test/fixtures/types/, outside the project's own type check (the first registers its tables,
 * which would type every other test's `request.db`).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/types/${name}`, import.meta.url))

const pass = fixture('typed-tables-pass.ts')
const fail = fixture('typed-tables-fail.ts')
// One program for both (a second would load the frameworks' types again); the first file's
// Register does not change what the second checks, which binds its own policies.
const program = ts.createProgram([pass, fail], {
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  customConditions: ['keyhole-source'],
  verbatimModuleSyntax: true,
  allowImportingTsExtensions: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
})

/** Line and message of every diagnostic of `file`. */
function diagnostics(file: string): { line: number; message: string }[] {
  return ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((diagnostic) => ({
    line: (diagnostic.file?.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line ?? -1) + 1,
    message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
  }))
}

t.test('correct calls over typed tables compile, request.db included', async (t) => {
  const found = diagnostics(pass)
  t.same(
    found.map((d) => `line ${d.line}: ${d.message}`),
    [],
    'no diagnostic',
  )
})

t.test('a wrong table, column or value type is a compile error where it is written', async (t) => {
  const file = fail
  const expected = new Map<number, string>()
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      const mark = /\/\/ error: (.*)$/.exec(text)
      if (mark) expected.set(i + 1, mark[1]!)
    })
  t.ok(expected.size >= 15, `${expected.size} mistakes marked`)
  const found = diagnostics(file)
  for (const [line, text] of expected) {
    const here = found.filter((d) => d.line === line)
    t.ok(
      here.some((d) => d.message.includes(text)),
      `line ${line}: ${text}`,
      { diagnostics: here.map((d) => d.message) },
    )
  }
  t.same(
    found.filter((d) => !expected.has(d.line)).map((d) => `line ${d.line}: ${d.message}`),
    [],
    'no diagnostic on an unmarked line',
  )
})
