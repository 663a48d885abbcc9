// JavaScript on purpose (see policies.js): a table for policies.js as expectAccess's builder,
// returned by the default export, as example-app/access.ts does.
import { expectAccess } from '../../../src/testing/expect-access.ts'
import { policies } from './policies.js'

export default function expectedAccess() {
  return expectAccess(policies).table('app.notes').as('member of A').can('read A', 'insert A')
}
