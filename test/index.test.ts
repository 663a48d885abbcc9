import t from 'tap'
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
    'checkDatabase',
    'assertDatabaseSecure',
    'startMonitor',
    'createSessionFactory',
    'setup',
    'migrate',
    'KeyholeError',
    'CapabilityDenied',
  ]) {
    t.ok(names.includes(name), `exports ${name}`)
  }
  t.notOk(names.includes('capabilities'), 'the Fastify plugin lives in keyhole/fastify')
  for (const name of names) {
    t.not((keyhole as Record<string, unknown>)[name], undefined, `${name} is defined`)
  }
})
