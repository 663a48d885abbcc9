/**
 * The RLS policies as SQL text, rendered from the compiled policy statements
 * (`compilePolicyStatements`), for the database's second line of defence.
 */
import type { Policies } from './policies.ts'
import {
  compilePolicyStatements,
  type PolicyStatement,
  type PolicyStatementOptions,
} from './policy-statements.ts'
import { renderColumnGrantSql } from './render-column-grants.ts'

export type RenderPolicyOptions = PolicyStatementOptions

/**
 * The statements as one SQL script: one statement a line, each table's introduced by a comment
 * naming it.
 */
export function policyStatementsText(statements: readonly PolicyStatement[]): string {
  const out: string[] = []
  let table: string | undefined
  for (const statement of statements) {
    if (statement.table !== table) {
      table = statement.table
      out.push(`-- ${table}`)
    }
    out.push(`${statement.sql};`)
  }
  return out.join('\n') + '\n'
}

/**
 * The SQL that installs the policies, idempotent (each policy dropped first; an operation without
 * a guard gets no policy, so RLS refuses it). The generated SQL for
 * `{ posts: { read: viaParent({ table: 'discussion_threads', key: 'id', column: 'thread_id', groupColumn: 'group_id' }, 'member') } }`
 * and the role `app_runtime`, pinned by test/sql/statement-text.test.ts:
 * ```sql
 * -- "posts"
 * ALTER TABLE "posts" ENABLE ROW LEVEL SECURITY;
 * ALTER TABLE "posts" FORCE ROW LEVEL SECURITY;
 * DROP POLICY IF EXISTS keyhole_select ON "posts";
 * CREATE POLICY keyhole_select ON "posts" AS PERMISSIVE FOR SELECT TO "app_runtime"
 *   USING (EXISTS (SELECT 1 FROM "discussion_threads" AS "p1" WHERE ("p1"."id" = "posts"."thread_id"
 *     AND ("p1"."group_id" = ANY ((SELECT keyhole.group_ids('member')::uuid[])::uuid[]) OR (SELECT keyhole.is_admin())))));
 * DROP POLICY IF EXISTS keyhole_insert ON "posts";
 * DROP POLICY IF EXISTS keyhole_update ON "posts";
 * DROP POLICY IF EXISTS keyhole_delete ON "posts";
 * ```
 * A declared insert gets `keyhole_insert` (WITH CHECK), update `keyhole_update` (USING and WITH
 * CHECK), delete `keyhole_delete` (USING). Tables with hidden columns (`columns: { hidden }`) get
 * the column grants of `renderColumnGrantSql` after the policies.
 * @throws ConfigurationError for an unknown group-ID type or a bad role name.
 */
export function renderPolicySql(policies: Policies, options: RenderPolicyOptions): string {
  const text = policyStatementsText(compilePolicyStatements(policies, options))
  return text + renderColumnGrantSql(policies, options.role)
}
