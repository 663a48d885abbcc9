import t from 'tap'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import * as keyhole from '../src/index.ts'

t.test('the core entry point exports the public API and nothing framework-specific', async (t) => {
  const names = Object.keys(keyhole).sort()
  for (const name of [
    'createAuthenticator',
    'guardedInsert',
    'guardedSelect',
    'guardedUpdate',
    'guardedDelete',
    'inGroup',
    'viaParent',
    'isSubject',
    'and',
    'or',
    'adminOnly',
    'definePolicies',
    'bindPolicies',
    'renderPolicySql',
    'renderRecordedPolicySql',
    'deriveCapability',
    'resolveCapabilityOptions',
    'checkRole',
    'assertRole',
    'checkDatabase',
    'assertDatabaseSecure',
    'capabilityStore',
    'startMonitor',
    'createSessionFactory',
    'setup',
    'migrate',
    'KeyholeError',
    'CapabilityDenied',
    'createKeyhole',
    'defineCapability',
    'op',
    'likeContains',
    'likePrefix',
    'guardedCount',
    'sql',
    'isSql',
    'channelNames',
    'decisionChannel',
    'findingChannel',
    'systemChannel',
  ]) {
    t.ok(names.includes(name), `exports ${name}`)
  }
  t.notOk(names.includes('capabilities'), 'the Fastify plugin lives in keyhole/fastify')
  t.notOk(names.includes('kysely') || names.includes('guarded'), 'Kysely lives in keyhole/kysely')
  for (const name of names) {
    t.not((keyhole as Record<string, unknown>)[name], undefined, `${name} is defined`)
  }
})

interface Manifest {
  exports: Record<string, string | Record<string, string>>
  types: string
  bin: Record<string, string>
  files: string[]
  scripts: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
}

const root = new URL('../', import.meta.url)
const manifest = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as Manifest

t.test(
  'package.json: each entry point resolves to its source in the repository, to dist/ when installed',
  async (t) => {
    for (const [entry, target] of Object.entries(manifest.exports)) {
      if (typeof target === 'string') {
        t.equal(entry, './package.json')
        continue
      }
      // The source condition first (set only in this repository: tsconfig, tap, tests' children).
      t.same(
        Object.keys(target),
        ['keyhole-source', 'types', 'import'],
        `${entry}: conditions in order`,
      )
      const source = target['keyhole-source'] as string
      t.ok(existsSync(new URL(source, root)), `${entry}: ${source} exists`)
      const built = `./dist/${source.slice(2, -'.ts'.length)}`
      t.same(
        [target.types, target.import],
        [`${built}.d.ts`, `${built}.js`],
        `${entry}: built from ${source}`,
      )
    }
    t.equal(manifest.types, (manifest.exports['.'] as Record<string, string>).types)
    t.same(manifest.bin, { keyhole: 'dist/bin/keyhole.js' })
    const bin = await readFile(new URL('bin/keyhole.ts', root), 'utf8')
    t.ok(bin.startsWith('#!/usr/bin/env node\n'), 'the bin keeps its shebang (tsc copies it)')
    t.same(
      manifest.files,
      ['dist', 'sql'],
      'the tarball: dist/, sql/, README, LICENSE, package.json',
    )
    t.ok(existsSync(new URL('LICENSE', root)))
    t.match(manifest.scripts.prepack, /npm run build/, 'npm pack and npm publish build first')
  },
)

t.test('package.json: pg, fastify, express and kysely are optional peers', async (t) => {
  t.same(Object.keys(manifest.peerDependencies).sort(), ['express', 'fastify', 'kysely', 'pg'])
  for (const name of Object.keys(manifest.peerDependencies)) {
    t.equal(manifest.peerDependenciesMeta[name]?.optional, true, name)
  }
  t.equal(manifest.peerDependencies.pg, '^8.11.0', 'the range .ci/run tests both ends of')
})
