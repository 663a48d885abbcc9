import t from 'tap'
import {
  atLeastAsStrict,
  operands,
  readsCapability,
} from '../../src/db/checks/policy-expression.ts'

const names = ['group_ids', 'is_admin', 'subject']
// As pg_get_expr prints the policy keyhole generates.
const guard =
  "((group_id = ANY ((( SELECT keyhole.group_ids('member'::text) AS group_ids))::uuid[])) OR ( SELECT keyhole.is_admin() AS is_admin))"

t.test(
  'OR and AND operands, at the top level only, quotes and parentheses respected',
  async (t) => {
    t.same(operands('((a) OR (b OR c))', 'OR'), ['a', 'b', 'c'])
    t.same(operands("(x = ' OR ') OR y", 'OR'), ["x = ' OR '", 'y'])
    t.same(operands('("a OR b" = 1)', 'OR'), ['"a OR b" = 1'])
    t.same(operands('(a AND b) OR c', 'AND'), ['(a AND b) OR c'])
    t.same(operands('(a) AND (b)', 'AND'), ['a', 'b'])
    t.same(operands("('it''s' = x)", 'OR'), ["'it''s' = x"])
    t.same(operands("('unclosed", 'OR'), ["('unclosed"], 'an unclosed quote is left whole')
    t.same(operands('(a OR b', 'OR'), ['(a OR b'], 'an unclosed parenthesis is left whole')
  },
)

t.test("every OR branch must call one of keyhole's functions", async (t) => {
  const cases: [string, boolean][] = [
    [guard, true],
    ['true', false],
    ['(true OR ( SELECT keyhole.is_admin() AS is_admin))', false],
    [`(${guard} OR (1 = 1))`, false],
    ["(title <> ''::text)", false],
    ['(owner = ( SELECT keyhole.subject() AS subject))', true],
    ['(owner = ( SELECT "subject"() AS subject))', true],
    ['(owner = ( SELECT my_subject() AS s))', false],
    // A name inside a string literal is not a call.
    ["(note = 'is_admin()'::text)", false],
    [
      "((note = 'keyhole.is_admin('::text) OR (owner = ( SELECT keyhole.subject() AS subject)))",
      false,
    ],
    ["(note = 'it''s is_admin()'::text)", false],
    // A keyhole function negated or null-tested does not restrict rows to the capability.
    [`(${guard} OR (( SELECT keyhole.subject() AS subject) IS NULL))`, false],
    [`(${guard} OR (( SELECT keyhole.subject() AS subject) IS NOT NULL))`, false],
    [`(${guard} OR (NOT ( SELECT keyhole.is_admin() AS is_admin)))`, false],
    [`(${guard} OR COALESCE(( SELECT keyhole.is_admin() AS is_admin), true))`, false],
    ['(owner IS DISTINCT FROM ( SELECT keyhole.subject() AS subject))', false],
    ['(owner <> ( SELECT keyhole.subject() AS subject))', false],
    ['(owner != ( SELECT keyhole.subject() AS subject))', false],
    ['(( SELECT keyhole.is_admin() AS is_admin) IS NOT TRUE)', false],
    // …unless another AND term of the branch reads it plainly.
    [`(${guard} AND (NOT ( SELECT keyhole.is_admin() AS is_admin)))`, true],
    ["((owner = ( SELECT keyhole.subject() AS subject)) AND (title <> ''::text))", true],
  ]
  for (const [expression, expected] of cases) {
    t.equal(readsCapability(expression, names), expected, expression)
  }
})

t.test(
  'a WITH CHECK is at least as strict as USING when it keeps all of its AND terms',
  async (t) => {
    t.ok(atLeastAsStrict(guard, guard))
    t.ok(atLeastAsStrict(`((${guard}) AND (x > 0))`, guard))
    t.ok(atLeastAsStrict('(a AND b AND c)', '(b AND a)'))
    t.notOk(atLeastAsStrict('a', '(a AND b)'))
    t.notOk(atLeastAsStrict('(a OR b)', 'a'))
  },
)
