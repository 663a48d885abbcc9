-- keyhole.reset_session, back to version 1 (000001): without the count of 000002.
--
-- 000002 compared the number of protocol-prepared statements the server holds with the number pg
-- believes parsed, and on a difference dropped them all from inside the function. Behind PgBouncer
-- 1.21+ with max_prepared_statements, the server connection holds PgBouncer's renamed statements
-- (PGBOUNCER_n) of every client that used it, so the numbers differ on nearly every request; and a
-- DEALLOCATE ALL run inside a function is invisible to PgBouncer (it reads the command tag, which is
-- SELECT), which would then bind statements the server no longer holds. keyhole now recovers on the
-- client instead: a request whose first round trip meets a statement an earlier request dropped
-- sends a top-level DEALLOCATE ALL, forgets what pg believed parsed, and sends its statements once
-- more (src/db/session.ts). The reset itself is version 1's.
CREATE FUNCTION keyhole.reset_session()
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  planted boolean := EXISTS (
    SELECT FROM pg_catalog.pg_prepared_statements AS p WHERE p.from_sql);
BEGIN
  EXECUTE 'CLOSE ALL';
  -- RESET ALL leaves the role alone (it is GUC_NO_RESET_ALL).
  RESET ROLE;
  RESET ALL;
  UNLISTEN *;
  PERFORM pg_catalog.pg_advisory_unlock_all();
  DISCARD TEMP;
  DISCARD SEQUENCES;
  IF planted THEN
    DEALLOCATE ALL;
  END IF;
  RETURN planted;
END
$$;
REVOKE ALL ON FUNCTION keyhole.reset_session() FROM PUBLIC;

-- Whoever could run version 2 (the runtime role, granted by `keyhole setup`) can run this one.
DO $$
DECLARE
  grantee regrole;
BEGIN
  FOR grantee IN
    SELECT a.grantee::regrole
    FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
    WHERE p.oid = 'keyhole.reset_session(integer)'::pg_catalog.regprocedure
      AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
  LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION keyhole.reset_session() TO %s', grantee);
  END LOOP;
END
$$;
DROP FUNCTION keyhole.reset_session(integer);
