-- keyhole's system context: work that must cross groups (a sign-in lookup, a nightly cleanup)
-- runs under a signed grant naming exactly the tables and operations it may touch, and the RLS
-- policies admit it only where the application's policies declare `system` for that table and
-- operation. There is no switch that turns row-level security off: this is a narrower key.
--
-- Applied after 000001 by `keyhole setup` and `keyhole migrate`, as the MIGRATION role. A database
-- migrated with 000001 keeps working: nothing of 000001 changes, and the roles that may already
-- execute keyhole.set_capability are granted the two new functions below (the same trust: the
-- signature decides, not the grant).
--
-- The grant travels as the capability does (see 000001), with its own prefixes so that neither
-- value can ever pass for the other:
--
-- 1. The application signs it: `hex(HMAC-SHA-256(key, 's.' || body)) || body`, the body being
--    `<issued at, ms, 15 digits>` followed by the grants as an array literal of
--    `<operation>:<table>` (`{"read:invitations","delete:public.sessions"}`), the table as the
--    application's policies name it. It is sent only as the bind parameter of
--    `SELECT keyhole.set_system($1)`, the first statement of the system context's transaction.
-- 2. set_system verifies it (signature, issued within the last minute) and stores a copy bound
--    to THIS transaction in the transaction-local setting `keyhole.system`:
--    `hex(HMAC(key, 'y.' || pg_backend_pid() || '.' || transaction start || '.' || body)) || body`.
--
-- Why an injection (arbitrary SQL as the runtime role) cannot mint, widen or keep it:
-- - mint: the key is readable only by the migration role (000001); without it no value passes
--   set_system, and a value written into `keyhole.system` by set_config fails the binding HMAC;
-- - widen: the grants are inside both HMACs; editing a table or an operation in the setting (or
--   in a signed value) fails them, and nothing is granted;
-- - replay or keep: the bound value names the backend and the transaction's start, so a copy read
--   from the setting is worthless in any later transaction, on this connection (a session-level
--   `set_config(…, false)` included) or another; the signed value expires within a minute;
-- - cross over: a user capability is signed with 'a.'/'t.', the system grant with 's.'/'y.', so
--   a value of one kind is never accepted as the other; set_system grants no group, no admin
--   flag and no subject, and set_capability grants nothing of `system`.
-- The RLS policies call keyhole.system_allows('<table>', '<operation>') only in the policies of
-- the tables and operations the application's policies declare for `system` (the start-up checks
-- compare every installed policy with the generated one, so a wider policy is a finding), and
-- the call is true only when the verified grant lists that table and operation: the grant narrows
-- what the declaration allows, and neither alone admits a row.
--
-- As in 000001: nothing raises on attacker-controlled input (the setting is only cut and compared
-- until its HMAC matched), every name is schema-qualified under a fixed search_path, and a
-- missing, empty or bad setting reads as "no grant". system_allows runs once per statement in
-- every policy that declares `system` (a scalar subquery), so for the ordinary request, where the
-- setting is unset, it returns before reading the key.

-- Verifies the application's signed grant and binds it to this transaction; returns true. Refuses
-- (SQLSTATE 28000, which aborts the transaction) a value that is not the application's or is stale.
CREATE FUNCTION keyhole.set_system(signed text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  body text := pg_catalog.substr(signed, 65);
  now_ms bigint := (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint;
  key record;
BEGIN
  SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
  -- CASE, not AND: the digits are cast only once the HMAC matched (they are then the
  -- application's). Issued within the last minute, and not more than a minute ahead.
  IF NOT FOUND OR (CASE WHEN pg_catalog.encode(keyhole.hmac_sha256(
       pg_catalog.convert_to('s.' || body, 'UTF8'), key.inner_pad, key.outer_pad), 'hex')
       = pg_catalog.substr(signed, 1, 64)
     THEN pg_catalog.abs(pg_catalog.substr(body, 1, 15)::bigint - now_ms) > 60000
     ELSE true END) THEN
    RAISE EXCEPTION 'keyhole: the signed system context was refused'
      USING ERRCODE = 'invalid_authorization_specification';
  END IF;
  PERFORM pg_catalog.set_config('keyhole.system',
    pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
      'y.' || pg_catalog.pg_backend_pid() || '.'
        || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.' || body,
      'UTF8'), key.inner_pad, key.outer_pad), 'hex') || body,
    true);
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION keyhole.set_system(text) FROM PUBLIC;

-- Whether this transaction's verified system grant lists `operation` on `tab` (the table as the
-- application's policies name it); false without one.
CREATE FUNCTION keyhole.system_allows(tab text, operation text)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  setting text := pg_catalog.current_setting('keyhole.system', true);
  key record;
BEGIN
  -- NULL on a fresh connection, '' after a transaction-local set_config ended: the usual case in
  -- a user's request, answered without reading the key.
  IF setting IS NULL OR setting = '' THEN
    RETURN false;
  END IF;
  SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
  IF NOT FOUND OR pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
       'y.' || pg_catalog.pg_backend_pid() || '.'
         || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.'
         || pg_catalog.substr(setting, 65), 'UTF8'), key.inner_pad, key.outer_pad), 'hex')
       <> pg_catalog.substr(setting, 1, 64) THEN
    RETURN false;
  END IF;
  -- The HMAC matched: the array literal is the application's own.
  RETURN COALESCE((operation || ':' || tab)
    = ANY (pg_catalog.substr(setting, 80)::text[]), false);
END
$$;
REVOKE ALL ON FUNCTION keyhole.system_allows(text, text) FROM PUBLIC;

-- A database set up before this file: whoever may already set a capability may set a system
-- grant (keyhole setup grants both by name on a new database, where this finds no one).
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
    EXECUTE 'GRANT EXECUTE ON FUNCTION keyhole.set_system(text), '
      || 'keyhole.system_allows(text, text) TO ' || grantee;
  END LOOP;
END
$grant$;
