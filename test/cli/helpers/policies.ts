import { inGroup } from '../../../src/sql/guard.ts'
import { definePolicies } from '../../../src/sql/policies.ts'

export const policies = definePolicies({
  'app.notes': { read: inGroup('group_id', 'member'), insert: inGroup('group_id', 'member') },
})
