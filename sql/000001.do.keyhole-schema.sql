-- keyhole's schema: the signing key and the functions row-level security policies call.
--
-- Applied by `keyhole setup` (and re-checked by `keyhole migrate`) as the MIGRATION role, which
-- owns the schema `keyhole` (created by setup). Setup grants EXECUTE on the four public functions
-- to the runtime role by name; nothing here is granted to PUBLIC.
--
-- The capability travels in two forms:
--
-- 1. The application signs it: `hex(HMAC-SHA-256(key, 'a.' || body)) || body`, the body being
--    `<issued at, ms, 15 digits><the token's exp, s, 12 digits, 0 for none><admin: 1 or 0>`
--    followed by four lines: the roles, lowest first, as an array literal (`{"member",…}`); for
--    each role, how many groups the holder has with that role or a higher one (`{3,1,0}`); the
--    group IDs, highest role first (`{"g3","g1","g2"}`), so that a role's groups are a prefix;
--    the subject as a JSON string. Fixed widths and array literals because the database reads
--    them on every request: a cast and a slice, where JSON would need a query per call.
--    It is sent only as a bind parameter of `SELECT keyhole.set_capability($1)`, the first
--    statement of the request's transaction: it never sits in a setting, so SQL running as the
--    runtime role cannot read it.
-- 2. set_capability verifies it (signature, issued within the last minute, not expired) and stores
--    a copy bound to THIS transaction in the transaction-local setting `keyhole.capability`:
--    `hex(HMAC(key, 't.' || pg_backend_pid() || '.' || transaction start (epoch, µs) || '.' ||
--    body)) || body`. The functions below recompute that HMAC, so a value read from the setting
--    (an injection can read its own setting) is worthless in any other transaction: the pid or
--    the transaction's start differs. No xid is needed (a read-only transaction has none and
--    assigning one costs), and the application does not need to know anything about the
--    transaction before sending: the binding is made inside it.
--
-- HMAC-SHA-256 is computed with the core sha256() (PostgreSQL 11+, in pg_catalog) from the key's
-- inner and outer pads (RFC 2104), precomputed by setup: no extension, so no extension schema to
-- trust on a fixed search_path. Comparing two HMACs with `=` is fine here: the attacker cannot time
-- a comparison against a key they do not hold for chosen inputs they could not have signed.
--
-- Every failure of the SETTING (missing, '' after a transaction-local set_config ended, malformed,
-- forged, tampered, expired, from another transaction, no key) reads as "no capability": no
-- groups, not admin, no subject. Nothing raises on attacker-controlled input: before the HMAC matched, the
-- value is only cut with substr() and compared; digits are cast and JSON is parsed only after it
-- matched (so they are the application's own).
--
-- These functions run on every request, so they are written for speed: PL/pgSQL re-initialises
-- each expression once per transaction, so they have few; regular expressions and base64 (tens of
-- microseconds per call in PostgreSQL's engine) are not used.

CREATE TABLE keyhole.signing_key (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  inner_pad bytea NOT NULL CHECK (octet_length(inner_pad) = 64),
  outer_pad bytea NOT NULL CHECK (octet_length(outer_pad) = 64)
);
REVOKE ALL ON TABLE keyhole.signing_key FROM PUBLIC;

-- HMAC-SHA-256 from precomputed pads. Pure (it holds no secret): harmless even if executable.
CREATE FUNCTION keyhole.hmac_sha256(message bytea, inner_pad bytea, outer_pad bytea)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
-- No SET clause: it would stop the planner from inlining it. Every name is schema-qualified.
AS $$
  SELECT pg_catalog.sha256(outer_pad OPERATOR(pg_catalog.||)
    pg_catalog.sha256(inner_pad OPERATOR(pg_catalog.||) message))
$$;
REVOKE ALL ON FUNCTION keyhole.hmac_sha256(bytea, bytea, bytea) FROM PUBLIC;

-- The verified, transaction-bound body (see above), or NULL. Invoker rights: only keyhole's SECURITY
-- DEFINER functions (running as the owner) can read the key through it, and they run it under
-- their fixed search_path; it has no SET clause of its own, which would cost a settings save and
-- restore on every call (it runs on every policy check).
CREATE FUNCTION keyhole.verified_payload()
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  setting text := pg_catalog.current_setting('keyhole.capability', true);
  key record;
BEGIN
  SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
  -- NULL on a fresh connection, '' after a transaction-local set_config ended: neither equals an
  -- HMAC. CASE, not AND: the digits are cast only once the HMAC matched (SQL does not promise an
  -- order for AND). Past the token's exp (0: none) during a long transaction: no capability.
  IF NOT FOUND OR (CASE WHEN pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
       't.' || pg_catalog.pg_backend_pid() || '.'
         || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.'
         || pg_catalog.substr(setting, 65), 'UTF8'), key.inner_pad, key.outer_pad), 'hex')
       = pg_catalog.substr(setting, 1, 64)
     THEN pg_catalog.substr(setting, 80, 12)::bigint <> 0
       AND pg_catalog.substr(setting, 80, 12)::bigint
         <= EXTRACT(epoch FROM pg_catalog.statement_timestamp())
     ELSE true END) THEN
    RETURN NULL;
  END IF;
  RETURN pg_catalog.substr(setting, 65);
END
$$;
REVOKE ALL ON FUNCTION keyhole.verified_payload() FROM PUBLIC;

-- Verifies the application's signed value and binds it to this transaction; returns true. Refuses
-- (SQLSTATE 28000, which aborts the transaction) a value that is not the application's, is stale
-- or has expired.
CREATE FUNCTION keyhole.set_capability(signed text)
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
  -- application's). Issued within the last minute (and not more than a minute ahead: clock skew),
  -- so a signed value that leaked (a server log of bind parameters) is useless soon after; not
  -- past the token's exp (0: none).
  IF NOT FOUND OR (CASE WHEN pg_catalog.encode(keyhole.hmac_sha256(
       pg_catalog.convert_to('a.' || body, 'UTF8'), key.inner_pad, key.outer_pad), 'hex')
       = pg_catalog.substr(signed, 1, 64)
     THEN pg_catalog.abs(pg_catalog.substr(body, 1, 15)::bigint - now_ms) > 60000
       OR pg_catalog.substr(body, 16, 12)::bigint <> 0
         AND pg_catalog.substr(body, 16, 12)::bigint * 1000 <= now_ms
     ELSE true END) THEN
    -- An error, not false: it aborts the transaction, so the request's statements that follow in
    -- the same round trip never run without the capability. It says nothing of the value.
    RAISE EXCEPTION 'keyhole: the signed capability was refused'
      USING ERRCODE = 'invalid_authorization_specification';
  END IF;
  PERFORM pg_catalog.set_config('keyhole.capability',
    pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
      't.' || pg_catalog.pg_backend_pid() || '.'
        || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.' || body,
      'UTF8'), key.inner_pad, key.outer_pad), 'hex') || body,
    true);
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION keyhole.set_capability(text) FROM PUBLIC;

-- The holder's group IDs for `role` or a higher role; '{}' without a valid capability or for a
-- role outside the capability's hierarchy: the prefix of the ID list that the role's count says.
-- PL/pgSQL, like the two below: a SQL-language function with a SET clause is never inlined, and
-- runs its query through a slower path on every call.
CREATE FUNCTION keyhole.group_ids(role text)
RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  body text := keyhole.verified_payload();
  rank integer := pg_catalog.array_position(
    pg_catalog.substr(pg_catalog.split_part(body, E'\n', 1), 29)::text[], role);
BEGIN
  IF rank IS NULL THEN
    RETURN '{}';
  END IF;
  RETURN (pg_catalog.split_part(body, E'\n', 3)::text[])
    [1:(pg_catalog.split_part(body, E'\n', 2)::integer[])[rank]];
END
$$;
REVOKE ALL ON FUNCTION keyhole.group_ids(text) FROM PUBLIC;

-- Whether the holder is an admin (everywhere); false without a valid capability.
CREATE FUNCTION keyhole.is_admin()
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN COALESCE(pg_catalog.substr(keyhole.verified_payload(), 28, 1) = '1', false);
END
$$;
REVOKE ALL ON FUNCTION keyhole.is_admin() FROM PUBLIC;

-- The holder's subject; NULL without a valid capability.
CREATE FUNCTION keyhole.subject()
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN pg_catalog.split_part(keyhole.verified_payload(), E'\n', 4)::jsonb #>> '{}';
END
$$;
REVOKE ALL ON FUNCTION keyhole.subject() FROM PUBLIC;

-- Ends a request on a pooled connection: undoes whatever its statements left in the SESSION,
-- where it would outlive the transaction and reach the next request, maybe another user's. An SQL
-- injection running as the runtime role can PREPARE a statement under the name of one the
-- application sends by name (pg parses a named statement once per connection and then only binds
-- it), SET search_path or ROLE, LISTEN, hold advisory locks, DECLARE a cursor WITH HOLD, read
-- currval(), and — with TEMP, which setup revokes — create a table that shadows a guarded one.
-- This is what DISCARD ALL does, without what makes DISCARD ALL cost a third of a request:
-- dropping every cached plan, the application's prepared statements and those inside these
-- functions. Plans hold no session state an injection could plant; SQL-level prepared statements
-- (`from_sql`: the protocol cannot create those) are the one thing that could, and when there is
-- any, every prepared statement is dropped and the function returns true: the caller must then
-- forget the statements it believes parsed (keyhole destroys the connection).
--
-- Invoker rights and no SET clause on purpose: it acts on the caller's session, and a SET clause
-- would restore the settings RESET ALL resets. Every name is schema-qualified.
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
