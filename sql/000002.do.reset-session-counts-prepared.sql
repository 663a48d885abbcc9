-- keyhole.reset_session, version 2: it also notices prepared statements a request DROPPED.
--
-- pg parses a named statement once per connection and from then on only binds it. A request whose
-- SQL runs `DEALLOCATE keyhole_set_capability`, `DEALLOCATE ALL` or `DISCARD ALL` removes statements
-- pg still believes parsed: the next request on that connection, maybe another user's, would fail
-- with "prepared statement does not exist" (26000). Version 1 only saw statements an injection
-- PREPAREd (`from_sql`). Now the caller passes how many named statements it believes the session
-- holds (keyhole's and the application's, all created by the protocol, which SQL cannot do); when
-- the server holds a different number, or any statement from SQL, every prepared statement is
-- dropped and the function returns true: the caller then forgets the statements it believes
-- parsed, and the next request parses them again. The comparison rides in the statement that
-- already runs: no round trip is added.
--
-- Everything else is as in version 1 (see 000001): invoker rights and no SET clause on purpose,
-- every name schema-qualified. What the function cannot undo — a transaction the request left open
-- — the caller sees in the protocol's transaction status and destroys the connection.
CREATE FUNCTION keyhole.reset_session(parsed integer)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  dropped boolean := (
    SELECT COALESCE(pg_catalog.bool_or(p.from_sql), false)
      OR pg_catalog.count(*) FILTER (WHERE NOT p.from_sql)
         OPERATOR(pg_catalog.<>) COALESCE(parsed, -1)
    FROM pg_catalog.pg_prepared_statements AS p);
BEGIN
  EXECUTE 'CLOSE ALL';
  -- RESET ALL leaves the role alone (it is GUC_NO_RESET_ALL).
  RESET ROLE;
  RESET ALL;
  UNLISTEN *;
  PERFORM pg_catalog.pg_advisory_unlock_all();
  DISCARD TEMP;
  DISCARD SEQUENCES;
  IF dropped THEN
    DEALLOCATE ALL;
  END IF;
  RETURN dropped;
END
$$;
REVOKE ALL ON FUNCTION keyhole.reset_session(integer) FROM PUBLIC;

-- Whoever could run version 1 (the runtime role, granted by `keyhole setup`) can run version 2.
DO $$
DECLARE
  grantee regrole;
BEGIN
  FOR grantee IN
    SELECT a.grantee::regrole
    FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
    WHERE p.oid = 'keyhole.reset_session()'::pg_catalog.regprocedure
      AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
  LOOP
    EXECUTE pg_catalog.format(
      'GRANT EXECUTE ON FUNCTION keyhole.reset_session(integer) TO %s', grantee);
  END LOOP;
END
$$;
DROP FUNCTION keyhole.reset_session();
