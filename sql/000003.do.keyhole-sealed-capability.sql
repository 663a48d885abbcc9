-- keyhole's sealed capability: where PostgreSQL lets it, the verified capability is kept in a
-- setting the runtime role cannot write, so the policies read it without the key and without an
-- HMAC on every check. Where it does not, nothing changes: the signed setting of 000001 is used.
--
-- Applied after 000001 and 000002 by `keyhole setup` and `keyhole migrate`, as the MIGRATION role.
-- It replaces set_capability, group_ids, is_admin and subject (CREATE OR REPLACE keeps their owner
-- and grants); the system context (000002) is unchanged.
--
-- The store. PostgreSQL 15 added privileges on parameters (`GRANT SET ON PARAMETER`). A
-- superuser-only (PGC_SUSET) parameter can then be set only by a superuser or a role holding SET
-- on it. `backtrace_functions` is one (PostgreSQL 13+, a string): it names C functions whose
-- errors get a backtrace in the server log, its check hook accepts only `[A-Za-z0-9_, \n\t]`, and
-- a value naming no C function has no effect. `keyhole setup` grants SET on it to the migration
-- role (never to the runtime role) when the server is 15+ and the connecting administrator may
-- grant it. set_capability, owned by the migration role, verifies the application's signature
-- exactly as in 000001 (HMAC with the key, issued within a minute, not expired), then stores
--
--   set_config('backtrace_functions', 'keyhole_' || pg_backend_pid() || '_' || <the transaction's
--     start, µs since the epoch> || '_' || hex(body), true)
--
-- and the readers (group_ids, is_admin, subject) decode that value: no key read, no HMAC.
--
-- Why the runtime role cannot write it: SET, SET LOCAL, RESET, set_config, a function's SET
-- clause, ALTER ROLE … SET and connection options all check the SET privilege on the parameter,
-- which the runtime role does not hold (the start-up check KH_DB_CAPABILITY_PARAMETER_WRITABLE
-- refuses a runtime role that holds SET or ALTER SYSTEM on it directly, through a membership or
-- through PUBLIC). Only set_capability, running as its owner, writes it, and only after the
-- signature matched. The readers never write it.
--
-- Why no replay: the value is transaction-local (set_config(…, true)): it ends with the
-- transaction. And it names the backend and the transaction's start, which the readers compare
-- with their own: a value that outlives its transaction anyway (an administrator copying one into
-- a role or database default, or postgresql.conf) names another transaction, and reads as no
-- capability. A value cannot be edited in place (an admin flag, a group): the runtime role cannot
-- write the parameter at all.
--
-- What an injection can do to it: read it (its own capability, as with 000001); and drop it:
-- RESET ALL resets every parameter whatever its privilege, and DISCARD ALL (outside a
-- transaction) does the same. Either leaves the parameter at its default, which is no
-- capability: a denial, never a widening. ROLLBACK TO SAVEPOINT can only bring back a value
-- set_capability itself stored in this transaction.
--
-- Why the fallback stays: PostgreSQL 14 has no parameter privileges, and managed services give no
-- superuser who could grant SET on a SUSET parameter (some do let their administrator role grant
-- it: then setup does). set_capability decides on every call, as its owner:
-- has_parameter_privilege('backtrace_functions', 'SET'), behind a version test in its own
-- statement (PL/pgSQL plans a statement when it first runs, so PostgreSQL 14 never sees the
-- function). Without the privilege it stores the HMAC-bound `keyhole.capability` of 000001,
-- unchanged, and the readers, finding no sealed value for this transaction, verify that one as
-- before. The readers try the sealed value first in both cases: a sealed value exists only where
-- the owner of set_capability (or a superuser) wrote it.
--
-- A past exp during a long transaction still reads as no capability (the readers compare the
-- token's exp with the statement's start, as 000001 does). A database administrator who set
-- backtrace_functions on purpose loses it inside keyhole's transactions only (set_capability
-- replaces it there).
--
-- Written for speed as 000001: each reader is self-contained PL/pgSQL with few expressions (each
-- is set up again in every transaction), no nested SQL function on the sealed path, no regular
-- expression or base64 (hex is decoded in C). The hex is cut out with split_part (it holds no
-- '_'), which finds bytes: substr would count characters through the whole value. is_admin
-- decodes the body's first 28 characters only, whatever the number of groups.

CREATE OR REPLACE FUNCTION keyhole.set_capability(signed text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  body text := pg_catalog.substr(signed, 65);
  now_ms bigint := (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint;
  sealed boolean := false;
  key record;
BEGIN
  SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
  -- As 000001: CASE, not AND, so the digits are cast only once the HMAC matched.
  IF NOT FOUND OR (CASE WHEN pg_catalog.encode(keyhole.hmac_sha256(
       pg_catalog.convert_to('a.' || body, 'UTF8'), key.inner_pad, key.outer_pad), 'hex')
       = pg_catalog.substr(signed, 1, 64)
     THEN pg_catalog.abs(pg_catalog.substr(body, 1, 15)::bigint - now_ms) > 60000
       OR pg_catalog.substr(body, 16, 12)::bigint <> 0
         AND pg_catalog.substr(body, 16, 12)::bigint * 1000 <= now_ms
     ELSE true END) THEN
    RAISE EXCEPTION 'keyhole: the signed capability was refused'
      USING ERRCODE = 'invalid_authorization_specification';
  END IF;
  -- Its own statement: planned only on PostgreSQL 15+, where has_parameter_privilege exists.
  IF pg_catalog.current_setting('server_version_num')::integer >= 150000 THEN
    sealed := pg_catalog.has_parameter_privilege('backtrace_functions', 'SET');
  END IF;
  IF sealed THEN
    PERFORM pg_catalog.set_config('backtrace_functions', 'keyhole_' || pg_catalog.pg_backend_pid()
      || '_' || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint
      || '_' || pg_catalog.encode(pg_catalog.convert_to(body, 'UTF8'), 'hex'), true);
  ELSE
    PERFORM pg_catalog.set_config('keyhole.capability',
      pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
        't.' || pg_catalog.pg_backend_pid() || '.'
          || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.' || body,
        'UTF8'), key.inner_pad, key.outer_pad), 'hex') || body,
      true);
  END IF;
  RETURN true;
END
$$;

-- The holder's group IDs for `role` or a higher role; '{}' without a valid capability or for a
-- role outside the capability's hierarchy (see 000001 for the body's lines).
CREATE OR REPLACE FUNCTION keyhole.group_ids(role text)
RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  setting text := pg_catalog.current_setting('backtrace_functions');
  bound text := 'keyhole_' || pg_catalog.pg_backend_pid() || '_'
    || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint || '_';
  body text;
BEGIN
  IF pg_catalog.starts_with(setting, bound) THEN
    -- Sealed for this transaction: set_capability wrote it after the signature matched.
    body := pg_catalog.convert_from(pg_catalog.decode(
      pg_catalog.split_part(setting, '_', 4), 'hex'), 'UTF8');
    IF pg_catalog.substr(body, 16, 12)::bigint <> 0 AND pg_catalog.substr(body, 16, 12)::bigint
         <= EXTRACT(epoch FROM pg_catalog.statement_timestamp()) THEN
      RETURN '{}';
    END IF;
  ELSE
    body := keyhole.verified_payload();
  END IF;
  RETURN COALESCE((pg_catalog.split_part(body, E'\n', 3)::text[])
    [1:(pg_catalog.split_part(body, E'\n', 2)::integer[])[pg_catalog.array_position(
      pg_catalog.substr(pg_catalog.split_part(body, E'\n', 1), 29)::text[], role)]], '{}');
END
$$;

-- Whether the holder is an admin (everywhere); false without a valid capability. The admin flag
-- and exp are the body's characters 28 and 16–27: their 56 hex digits are all it decodes.
CREATE OR REPLACE FUNCTION keyhole.is_admin()
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  setting text := pg_catalog.current_setting('backtrace_functions');
  bound text := 'keyhole_' || pg_catalog.pg_backend_pid() || '_'
    || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint || '_';
  head text;
BEGIN
  IF pg_catalog.starts_with(setting, bound) THEN
    head := pg_catalog.convert_from(pg_catalog.decode(
      pg_catalog.substr(setting, pg_catalog.length(bound) + 1, 56), 'hex'), 'UTF8');
    RETURN pg_catalog.substr(head, 28, 1) = '1' AND (pg_catalog.substr(head, 16, 12)::bigint = 0
      OR pg_catalog.substr(head, 16, 12)::bigint
        > EXTRACT(epoch FROM pg_catalog.statement_timestamp()));
  END IF;
  RETURN COALESCE(pg_catalog.substr(keyhole.verified_payload(), 28, 1) = '1', false);
END
$$;

-- The holder's subject; NULL without a valid capability.
CREATE OR REPLACE FUNCTION keyhole.subject()
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  setting text := pg_catalog.current_setting('backtrace_functions');
  bound text := 'keyhole_' || pg_catalog.pg_backend_pid() || '_'
    || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint || '_';
  body text;
BEGIN
  IF pg_catalog.starts_with(setting, bound) THEN
    body := pg_catalog.convert_from(pg_catalog.decode(
      pg_catalog.split_part(setting, '_', 4), 'hex'), 'UTF8');
    IF pg_catalog.substr(body, 16, 12)::bigint <> 0 AND pg_catalog.substr(body, 16, 12)::bigint
         <= EXTRACT(epoch FROM pg_catalog.statement_timestamp()) THEN
      RETURN NULL;
    END IF;
  ELSE
    body := keyhole.verified_payload();
  END IF;
  RETURN pg_catalog.split_part(body, E'\n', 4)::jsonb #>> '{}';
END
$$;
