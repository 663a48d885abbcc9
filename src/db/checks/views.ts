import type { DatabaseFinding } from '../../errors.ts'
import { finding, guardedOids, ident, rows, type Check } from './context.ts'

/**
 * Check 7: views (and materialized views) built on a guarded table, directly or through other
 * views, that the runtime role can use and that read with their owner's rights: without
 * `security_invoker` the guarded table's policies are applied for the view's owner, not for the
 * runtime role. A materialized view is a copy made with its owner's rights, so any is reported.
 *
 * The generated SQL:
 * ```sql
 * WITH RECURSIVE dependents(oid) AS (
 *   SELECT rw.ev_class FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid
 *   WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
 *     AND d.refobjid = ANY ($1::oid[]) AND rw.ev_class <> d.refobjid
 *   UNION
 *   SELECT rw.ev_class FROM dependents x JOIN pg_depend d ON d.refobjid = x.oid … )
 * SELECT c.oid::regclass::text AS view, c.relkind::text AS kind FROM dependents x JOIN pg_class c ON c.oid = x.oid
 * WHERE c.relkind IN ('v', 'm') AND has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE')
 *   AND (c.relkind = 'm' OR NOT coalesce((SELECT option_value::boolean
 *        FROM pg_options_to_table(c.reloptions) WHERE option_name = 'security_invoker'), false))
 * ```
 */
export const checkViews: Check = async (context) => {
  const { db, runtime } = context
  const views = await rows<{ view: string; kind: 'v' | 'm' }>(
    db,
    `WITH RECURSIVE dependents(oid) AS (
       SELECT rw.ev_class FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid
       WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
         AND d.refobjid = ANY ($1::oid[]) AND rw.ev_class <> d.refobjid
       UNION
       SELECT rw.ev_class FROM dependents x
       JOIN pg_depend d ON d.refobjid = x.oid
         AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_rewrite'::regclass
       JOIN pg_rewrite rw ON rw.oid = d.objid
       WHERE rw.ev_class <> x.oid
     )
     SELECT c.oid::regclass::text AS view, c.relkind::text AS kind
     FROM dependents x JOIN pg_class c ON c.oid = x.oid
     WHERE c.relkind IN ('v', 'm')
       AND has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE')
       AND (c.relkind = 'm' OR NOT coalesce((
         SELECT o.option_value::boolean FROM pg_options_to_table(c.reloptions) AS o
         WHERE o.option_name = 'security_invoker'), false))
     ORDER BY 1`,
    [guardedOids(context)],
  )
  const findings: DatabaseFinding[] = []
  for (const { view, kind } of views) {
    findings.push(
      kind === 'm'
        ? finding(
            'KH_DB_VIEW_OWNER_RIGHTS',
            `the runtime role ${runtime.name} can read the materialized view ${view}, a copy of guarded rows made with its owner's rights`,
            `REVOKE ALL ON ${view} FROM ${ident(runtime.name)}, PUBLIC; (or drop it)`,
          )
        : finding(
            'KH_DB_VIEW_OWNER_RIGHTS',
            `the runtime role ${runtime.name} can use the view ${view} over a guarded table, and the view runs with its owner's rights (no security_invoker)`,
            `ALTER VIEW ${view} SET (security_invoker = on); (PostgreSQL 15+) or REVOKE ALL ON ${view} FROM ${ident(runtime.name)}, PUBLIC;`,
          ),
    )
  }
  return findings
}
