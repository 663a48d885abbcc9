-- keyhole's unique-key test, answered once per plan instead of on every guarded write.
--
-- Applied after 000001–000004 by `keyhole setup` and `keyhole migrate`, as the MIGRATION role.
--
-- A guarded INSERT or UPDATE refuses to set a column of a unique index or exclusion constraint
-- the statement did not name in `chosenKeys` (src/sql/unique-keys.ts: such a value is an existence
-- oracle). Without this file the test is a sub-select of the catalogue in the write's own WHERE,
-- run on every execution: ~40 µs of backend CPU per guarded INSERT, a fifth of its cost.
--
-- This function is that sub-select, declared IMMUTABLE so that PostgreSQL evaluates it while
-- planning (its arguments are constants in the statement's text: a regclass literal and the
-- column names) and the plan carries only its answer. That declaration is what PostgreSQL's
-- documentation warns against for a function that reads tables, and this is why it holds here:
-- - The answer depends only on the table's indexes and column names. Every DDL that changes them
--   (CREATE or DROP INDEX, ADD or DROP CONSTRAINT, RENAME COLUMN, DROP and CREATE TABLE) sends a
--   relcache invalidation for the table. A cached plan of a statement that writes the table is
--   checked against those invalidations when the statement takes its lock on the table, before it
--   runs, and planned again (and this function evaluated again) if one arrived: the answer is
--   never older than the table's definition, as it was with the sub-select. DDL in another
--   session is seen as soon as it commits; test/sql/unique-keys-folded.test.ts checks it with a
--   prepared statement whose plan is cached.
-- - An unnamed or unprepared statement is planned on every execution: the function runs each time.
-- - It is used only where its arguments are constants; a call with non-constant arguments would
--   simply run at execution time.
--
-- SECURITY DEFINER with a fixed search_path, as keyhole's other functions (the start-up check
-- KH_DB_KEYHOLE_FUNCTION_ALTERED compares it with these): it reads only catalogues any role can
-- read, and returns a boolean about the table it is given. The runtime role may execute it, never
-- replace it (it does not own it).
CREATE FUNCTION keyhole.sets_unique_key(relation regclass, columns name[])
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (
    SELECT FROM pg_catalog.pg_index AS i
    WHERE i.indrelid = relation AND (i.indisunique OR i.indisexclusion)
      AND (i.indkey::pg_catalog.int2[] OPERATOR(pg_catalog.&&) ARRAY(
          SELECT a.attnum FROM pg_catalog.pg_attribute AS a
          WHERE a.attrelid = relation AND a.attname OPERATOR(pg_catalog.=) ANY (columns))
        OR (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) AND EXISTS (
          SELECT FROM pg_catalog.pg_depend AS d
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid
            AND d.refobjsubid OPERATOR(pg_catalog.=) ANY (ARRAY(
              SELECT a.attnum FROM pg_catalog.pg_attribute AS a
              WHERE a.attrelid = relation AND a.attname OPERATOR(pg_catalog.=) ANY (columns))))))
$$;
REVOKE ALL ON FUNCTION keyhole.sets_unique_key(regclass, name[]) FROM PUBLIC;

-- A database set up before this file: whoever may set a capability may run the test (keyhole
-- setup grants it by name on a new database, where this finds no one).
DO $grant$
DECLARE
  grantee text;
BEGIN
  FOR grantee IN
    SELECT pg_catalog.quote_ident(r.rolname)
    FROM pg_catalog.pg_proc AS p
    CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) AS a
    JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
    WHERE p.oid = 'keyhole.set_capability(text)'::pg_catalog.regprocedure
      AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
  LOOP
    EXECUTE 'GRANT EXECUTE ON FUNCTION keyhole.sets_unique_key(regclass, name[]) TO ' || grantee;
  END LOOP;
END
$grant$;
