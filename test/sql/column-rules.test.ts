/**
 * Column rules as `definePolicies` takes them: checked, frozen, their roles checked against the
 * hierarchy, and typed by the table's columns with `definePolicies<DB>` (the `@ts-expect-error`
 * lines are the compile-time half: the project's type check fails if one stops being an error).
 */
import t from 'tap'
import { inGroup } from '../../src/sql/guard.ts'
import { bindPolicies, definePolicies } from '../../src/sql/policies.ts'
import { makeCapability } from '../helpers/sql-capability.ts'

const member = inGroup('group_id', 'member')

t.test('columns are checked and frozen, their roles collected', async (t) => {
  const policies = definePolicies({
    groups: {
      read: member,
      columns: {
        read: { member: ['id', 'name', 'name'], moderator: ['invite_code'] },
        write: { moderator: '*' },
        hidden: ['password_hash'],
      },
    },
  })
  const columns = policies.tables.groups?.columns
  t.same(columns, {
    read: { member: ['id', 'name'], moderator: ['invite_code'] },
    write: { moderator: '*' },
    hidden: ['password_hash'],
  })
  t.ok(
    Object.isFrozen(columns) && Object.isFrozen(columns?.read) && Object.isFrozen(columns?.hidden),
  )
  t.ok(Object.isFrozen(columns?.read?.member))
  t.same([...policies.roles].sort(), ['member', 'moderator'])
  // Defining again from the frozen result (as the test-policies command does) gives the same.
  t.same(definePolicies(policies.tables).tables.groups?.columns, columns)
})

t.test('bad column rules are refused at definition, with exact codes', async (t) => {
  const bad: [string, unknown, string][] = [
    ['not an object', 'id', 'KH_INVALID_OPTIONS'],
    ['null', null, 'KH_INVALID_OPTIONS'],
    ['a list', ['id'], 'KH_INVALID_OPTIONS'],
    ['unknown key', { readable: {} }, 'KH_INVALID_OPTIONS'],
    ['read not an object', { read: ['id'] }, 'KH_INVALID_OPTIONS'],
    ['read null', { read: null }, 'KH_INVALID_OPTIONS'],
    ['write not an object', { write: '*' }, 'KH_INVALID_OPTIONS'],
    ['a role list that is no list', { read: { member: 'id' } }, 'KH_INVALID_OPTIONS'],
    ['a bad column', { read: { member: ['id; DROP'] } }, 'KH_INVALID_IDENTIFIER'],
    ['a column that is no string', { write: { member: [1] } }, 'KH_INVALID_IDENTIFIER'],
    ['a bad role', { read: { 'mem ber': ['id'] } }, 'KH_INVALID_IDENTIFIER'],
    ['hidden not a list', { hidden: 'password_hash' }, 'KH_INVALID_OPTIONS'],
    ['a bad hidden column', { hidden: ['a"b'] }, 'KH_INVALID_IDENTIFIER'],
    ['hidden without read', { hidden: ['password_hash'] }, 'KH_INVALID_OPTIONS'],
    ['hidden with read *', { read: { member: '*' }, hidden: ['h'] }, 'KH_INVALID_OPTIONS'],
    ['hidden and readable', { read: { member: ['id', 'h'] }, hidden: ['h'] }, 'KH_INVALID_OPTIONS'],
    [
      'hidden and writable',
      { read: { member: ['id'] }, write: { moderator: ['h'] }, hidden: ['h'] },
      'KH_INVALID_OPTIONS',
    ],
  ]
  for (const [name, columns, code] of bad) {
    t.throws(
      () => definePolicies({ groups: { read: member, columns } as never }),
      { code, statusCode: 500 },
      name,
    )
  }
  // `write: '*'` is no SQL `*`: a table with hidden columns may let a role write any other one.
  t.doesNotThrow(() =>
    definePolicies({
      groups: {
        read: member,
        columns: { read: { member: ['id'] }, write: { member: '*' }, hidden: ['h'] },
      },
    }),
  )
})

t.test('a role of the column rules must be in the hierarchy', async (t) => {
  const policies = definePolicies({
    groups: { read: member, columns: { read: { owner: ['id'] } } },
  })
  t.throws(
    () => bindPolicies(policies, { query: async () => ({ rows: [] }) } as never, makeCapability()),
    {
      code: 'KH_INVALID_OPTIONS',
      message: /role "owner"/,
    },
  )
})

t.test('with definePolicies<DB>, the column names are those of the table', async (t) => {
  interface DB {
    groups: { id: string; name: string; invite_code: string; password_hash: string }
    posts: { id: string; body: string }
  }
  const policies = definePolicies<DB>({
    groups: {
      read: member,
      columns: {
        read: { member: ['id', 'name'], moderator: ['invite_code'] },
        write: { moderator: '*' },
        hidden: ['password_hash'],
      },
    },
    posts: {
      read: member,
      // @ts-expect-error: posts has no column title
      columns: { read: { member: ['id', 'title'] } },
    },
  })
  definePolicies<DB>({
    // @ts-expect-error: a hidden column of groups must be a column of groups
    groups: { read: member, columns: { read: { member: ['id'] }, hidden: ['body'] } },
  })
  t.ok(policies.tables.groups)
})
