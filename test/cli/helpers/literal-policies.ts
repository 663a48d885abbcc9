// A TypeScript module that imports nothing of keyhole's source, so that loading it through tsx
// loads no second copy of that source (see policies.js). Its guard stands for one of another copy
// of keyhole (as a module that tsx loads has: it imports keyhole anew), which loadPolicies makes
// again as one of its own.
class Guard {
  readonly id = -1
  constructor(readonly node: object) {}
}

export const policies = {
  tables: {
    'app.notes': { read: new Guard({ kind: 'inGroup', column: 'group_id', role: 'member' }) },
  },
  roles: ['member'],
}
