// JavaScript on purpose: `--policies` imports a .js module as Node does, in this process's own
// module instances. A .ts module goes through the application's tsx (its import API), which loads a
// second, differently transpiled copy of keyhole's source, and tap would merge that copy's coverage
// into the source's own, marking covered lines as missed. load-policies.test.ts covers the tsx path.
import { inGroup } from '../../../src/sql/guard.ts'
import { definePolicies } from '../../../src/sql/policies.ts'

export const policies = definePolicies({
  'app.notes': { read: inGroup('group_id', 'member'), insert: inGroup('group_id', 'member') },
})
