/**
 * Reading a policy expression as `pg_get_expr` prints it, to tell whether every way it can be true
 * depends on the capability. This is a conservative text analysis, not a proof: it splits the
 * expression into its top-level OR branches and requires each branch to call one of keyhole's
 * functions outside string literals and not under a negation or a null test. `true`, `(1 = 1)`,
 * `(x OR true)`, `published`, `subject() IS NULL` and `NOT is_admin()` as a branch all fail it.
 */

/** Strips parentheses that enclose the whole expression. */
function unwrap(expression: string): string {
  let text = expression.trim()
  while (text.startsWith('(') && closingParenthesis(text, 0) === text.length - 1) {
    text = text.slice(1, -1).trim()
  }
  return text
}

/** The index of the parenthesis that closes the one at `open`, skipping quoted text. */
function closingParenthesis(text: string, open: number): number {
  let depth = 0
  for (let i = open; i < text.length; i++) {
    const c = text[i]
    if (c === "'" || c === '"') {
      i = text.indexOf(c, i + 1)
      // pg_get_expr always closes its quotes; doubled quotes re-open and close in turn.
      if (i < 0) return -1
    } else if (c === '(') depth++
    else if (c === ')' && --depth === 0) return i
  }
  return -1
}

/** The top-level `OR` (or `AND`) operands of an expression, unwrapped and split recursively. */
export function operands(expression: string, operator: 'OR' | 'AND'): string[] {
  const separator = ` ${operator} `
  const text = unwrap(expression)
  const branches: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1)
      i = end < 0 ? text.length : end
    } else if (c === '(') depth++
    else if (c === ')') depth--
    else if (depth === 0 && text.startsWith(separator, i)) {
      branches.push(text.slice(start, i))
      start = i + separator.length
      i += separator.length - 1
    }
  }
  if (branches.length === 0) return [text]
  branches.push(text.slice(start))
  return branches.flatMap((b) => operands(b, operator))
}

/** Empties every string literal (`'…'`, doubled quotes inside): a name in one is not a call. */
export function stripLiterals(expression: string): string {
  return expression.replace(/'(?:[^']|'')*'/g, "''")
}

/**
 * Constructs that make a term true WITHOUT the capability granting anything: `subject() IS NULL`
 * holds for the anonymous, `NOT is_admin()` for everyone else, `coalesce(…, true)`, `IS DISTINCT
 * FROM`, `<>` hold for whatever the capability does not say. A term that calls a keyhole function
 * only under one of them does not restrict the rows to the capability.
 */
const SUSPECT =
  /\bIS\s+(?:NOT\b|NULL\b|FALSE\b|UNKNOWN\b|DISTINCT\b)|\bNOT\b|\bCOALESCE\s*\(|\bNULLIF\s*\(|\bCASE\b|<>|!=/i

/**
 * True when every OR branch of `expression` has an AND term that calls one of `functionNames`
 * (keyhole's functions, qualified or not) and does not negate or null-test it (see SUSPECT). A
 * branch that does not is true for some rows whatever the capability says.
 */
export function readsCapability(
  expression: string,
  functionNames: readonly string[],
  parentLookups = false,
): boolean {
  const names = functionNames.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')
  const call = new RegExp(`(?:^|[^A-Za-z0-9_$])"?(?:${names})"?\\s*\\(`)
  return operands(stripLiterals(expression), 'OR').every(
    (branch) =>
      (parentLookups && PARENT_LOOKUP.test(unwrap(branch))) ||
      (names !== '' &&
        operands(branch, 'AND').some((term) => call.test(term) && !SUSPECT.test(term))),
  )
}

/** An identifier as pg_get_expr prints it: plain, or double-quoted. */
const IDENT = '(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")'

/**
 * A branch that only looks up the row's parent, exactly as pg_get_expr prints keyhole's
 * `viaParent` without a condition of its own: one table, one alias, one equality of the alias's
 * key with a column of the row. Nothing else may be in it (no join, no UNION, no other term), so
 * it is true exactly when the parent's row is visible, which the parent's own policies decide.
 */
const PARENT_LOOKUP = new RegExp(
  `^EXISTS \\( SELECT 1\\s+FROM (?:${IDENT}\\.)?${IDENT} (${IDENT})\\s+WHERE \\(\\1\\.${IDENT} = ${IDENT}\\.${IDENT}\\)\\)$`,
)

/**
 * True when `check` is at least as strict as `using` by its form: equal, or an AND of terms that
 * include every AND term of `using`. (A WITH CHECK that is merely different is reported: the
 * generated policies use the same rule for both, and anything else may let a row move out of the
 * holder's groups.)
 */
export function atLeastAsStrict(check: string, using: string): boolean {
  const terms = new Set(operands(check, 'AND'))
  return operands(using, 'AND').every((term) => terms.has(term))
}
