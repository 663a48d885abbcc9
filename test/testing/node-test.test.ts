/**
 * keyhole/testing in node:test (tap runs this file and reads the TAP that node:test prints): a
 * check is one awaited call, and a wrong expectation rejects with an AssertionError whose message
 * is the matrix, as node:test reports any failed assertion.
 */
import { strict as assert } from 'node:assert'
import { test } from 'node:test'
import { definePolicies, inGroup } from 'keyhole'
import { checkAccess, expectAccess, PolicyMismatch } from 'keyhole/testing'
import { scratchName, serverUrl } from '../helpers/database.ts'

const policies = definePolicies({
  notes: { read: inGroup('group_id', 'member'), insert: inGroup('group_id', 'moderator') },
})

test('node:test: a wrong expectation rejects with an AssertionError carrying the matrix', async () => {
  const started = Date.now()
  const expected = expectAccess(policies)
    .table('notes')
    .as('member of A')
    .can('read A', 'insert A') // wrong: inserting takes a moderator
    .as('moderator of A')
    .can('read A', 'insert A')
    .as('member of B')
    .can('read B')
    .as('moderator of B')
    .can('read B', 'insert B')
    .as('admin')
    .can('read', 'insert')
  await assert.rejects(
    checkAccess({
      policies,
      databaseUrl: serverUrl(),
      database: scratchName(),
      groups: { A: '11', B: '12' },
      capability: { groupIdType: 'bigint' },
      migrations: async (client) => {
        await client.query(
          'CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, group_id bigint NOT NULL, body text NOT NULL)',
        )
      },
      expect: expected,
    }),
    (error: unknown) => {
      assert.ok(error instanceof assert.AssertionError)
      assert.ok(error instanceof PolicyMismatch)
      assert.deepEqual(error.expected, { 'notes · member of A · insert A': 'all' })
      assert.deepEqual(error.actual, {
        'notes · member of A · insert A': { guard: 'none', rls: 'none' },
      })
      assert.match(error.message, /member of A {5}yes {5}no {6}yes/)
      return true
    },
  )
  console.log(`# checkAccess with its scratch database: ${Date.now() - started} ms`)
})
