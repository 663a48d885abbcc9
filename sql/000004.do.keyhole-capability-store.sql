-- keyhole's capability store, decided once at setup instead of on every request, and a sealed
-- value of constant size.
--
-- Applied after 000001–000003 by `keyhole setup` and `keyhole migrate`, as the MIGRATION role. It
-- adds keyhole.install_capability_store(), runs it, and `keyhole setup` runs it again (as the
-- migration role) after it granted or could not grant the parameter's privilege. It replaces
-- set_capability, group_ids, is_admin and subject with ONE of two variants (CREATE OR REPLACE
-- keeps their owner and grants); the system context (000002) and verified_payload (000001) are
-- unchanged.
--
-- Why decide at setup. 000003's set_capability tested the server's version and
-- has_parameter_privilege on every call (~13 µs a request), and its readers tried the sealed value
-- before verifying the signed one. The answer changes only when someone grants or revokes SET on
-- backtrace_functions, which is an administrator's act: setup (or migrate) installs the variant the
-- migration role's privilege allows, and the start-up checks and the monitor compare the two
-- (KH_DB_CAPABILITY_STORE_MISMATCH): a grant revoked after setup makes the sealed
-- set_config fail (42501, permission denied: every request is refused, none is widened) and is a
-- finding whose fix is to grant it again or run `keyhole setup`, which installs the signed variant
-- when it cannot grant. The variants never mix: the sealed readers read no signed value and the
-- signed readers no sealed one, so a mismatched pair reads as no capability.
--
-- The SIGNED variant is 000001's, unchanged in what it stores and verifies (verified_payload reads
-- the HMAC-bound `keyhole.capability`); set_capability now cuts the body as bytes (substr on text
-- counts characters through the whole value: ~260 µs for 1 000 groups).
--
-- The SEALED variant (PostgreSQL 15+, the migration role holding SET on backtrace_functions; see
-- 000003 for why only that role can write it). set_capability verifies the application's signature
-- exactly as 000001 does, then stores two transaction-local values:
--
--   keyhole.capability  = <body>                                          (any role may write it)
--   backtrace_functions = 'keyhole_' || pg_backend_pid() || '_' || <the transaction's start, µs
--     since the epoch> || '_' || <the body's first 28 characters: issued at, exp, admin flag>
--     || '_' || hex(sha256(<body>))                                  (only its owner may write it)
--
-- The readers accept the body only when the sealed value names this backend and this transaction
-- and the body's SHA-256 is the one sealed. is_admin reads the admin flag and exp from the sealed
-- value itself, without the body.
--
-- Why it holds (each is an attack in test/db/keyhole-schema.test.ts, run against both variants):
-- - forge or widen: the runtime role may write keyhole.capability, but a body other than the one
--   set_capability verified has another SHA-256 (finding a second body with the same SHA-256 is
--   infeasible), and it cannot write backtrace_functions at all (42501, check
--   KH_DB_CAPABILITY_PARAMETER_WRITABLE); an edited admin flag or group reads as no capability;
-- - replay or keep: both values end with the transaction; a sealed value copied into a role or
--   database default names another backend or transaction and reads as no capability;
-- - drop: RESET ALL or DISCARD ALL reset both: no capability, a denial.
-- - no key and no HMAC on a read, as 000003: one SHA-256 of the body per group_ids or subject call.
--
-- Why not a denser encoding of the body in backtrace_functions (000003 stored its hex, twice the
-- bytes): its check hook accepts only [A-Za-z0-9_, \n\t] (elog.c, check_backtrace_functions), so
-- base64 needs a translate() of '+/=', which costs more than the hex saves (1 000 groups: 2 600 µs
-- against 1 100). And set_config of a superuser-only parameter costs ~8 ns a byte: a sealed value of
-- constant size (~130 bytes) is what makes set_capability's cost nearly flat in the number of
-- groups (1 000 groups: ~290 µs of backend CPU, 000003's 1 100).
--
-- Written for speed as 000001: few PL/pgSQL statements (each expression is set up again in every
-- transaction), the key read in its own parameterless query (a query with the signed value in its
-- WHERE would be planned again on every call), the body cut and hashed as bytes. As everywhere in
-- keyhole: CASE, not AND, so digits are cast only once the HMAC or the seal matched; nothing raises
-- on attacker-controlled input except set_capability's refusal.

-- Installs the variant the privilege of the four functions' owner (the migration role) allows and
-- returns it: 'sealed' or 'signed'. Invoker rights: only their owner may replace them; nobody else
-- may run it.
CREATE FUNCTION keyhole.install_capability_store()
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $install$
BEGIN
  -- Its own statement: planned only on PostgreSQL 15+, where has_parameter_privilege exists.
  IF pg_catalog.current_setting('server_version_num')::integer >= 150000 THEN
    -- The privilege of the functions' owner (the migration role), whoever runs this.
    IF pg_catalog.has_parameter_privilege((SELECT p.proowner FROM pg_catalog.pg_proc AS p
         WHERE p.oid = 'keyhole.set_capability(text)'::pg_catalog.regprocedure),
         'backtrace_functions', 'SET') THEN
      CREATE OR REPLACE FUNCTION keyhole.set_capability(signed text)
      RETURNS boolean
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp
      AS $$
      DECLARE
        body bytea := pg_catalog.substr(pg_catalog.convert_to(signed, 'UTF8'), 65);
        key record;
      BEGIN
        SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
        IF NOT FOUND OR (CASE WHEN pg_catalog.encode(keyhole.hmac_sha256(
             pg_catalog.convert_to('a.', 'UTF8') || body, key.inner_pad, key.outer_pad), 'hex')
             = pg_catalog.substr(signed, 1, 64)
           THEN pg_catalog.abs(pg_catalog.substr(signed, 65, 15)::bigint
               - (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint) > 60000
             OR pg_catalog.substr(signed, 80, 12)::bigint <> 0
               AND pg_catalog.substr(signed, 80, 12)::bigint
                 <= EXTRACT(epoch FROM pg_catalog.clock_timestamp())
           ELSE true END) THEN
          RAISE EXCEPTION 'keyhole: the signed capability was refused'
            USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        PERFORM pg_catalog.set_config('keyhole.capability', pg_catalog.convert_from(body, 'UTF8'),
          true);
        RETURN pg_catalog.set_config('backtrace_functions', 'keyhole_' || pg_catalog.pg_backend_pid()
          || '_' || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint
          || '_' || pg_catalog.substr(signed, 65, 28)
          || '_' || pg_catalog.encode(pg_catalog.sha256(body), 'hex'), true) IS NOT NULL;
      END
      $$;

      CREATE OR REPLACE FUNCTION keyhole.group_ids(role text)
      RETURNS text[]
      LANGUAGE plpgsql STABLE SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp
      AS $$
      DECLARE
        body text := pg_catalog.current_setting('keyhole.capability', true);
      BEGIN
        IF (CASE WHEN pg_catalog.current_setting('backtrace_functions') = 'keyhole_'
             || pg_catalog.pg_backend_pid() || '_'
             || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint || '_'
             || pg_catalog.substr(body, 1, 28) || '_'
             || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(body, 'UTF8')), 'hex')
           THEN pg_catalog.substr(body, 16, 12)::bigint <> 0
             AND pg_catalog.substr(body, 16, 12)::bigint
               <= EXTRACT(epoch FROM pg_catalog.statement_timestamp())
           ELSE true END) THEN
          RETURN '{}';
        END IF;
        RETURN COALESCE((pg_catalog.split_part(body, E'\n', 3)::text[])
          [1:(pg_catalog.split_part(body, E'\n', 2)::integer[])[pg_catalog.array_position(
            pg_catalog.substr(pg_catalog.split_part(body, E'\n', 1), 29)::text[], role)]], '{}');
      END
      $$;

      CREATE OR REPLACE FUNCTION keyhole.is_admin()
      RETURNS boolean
      LANGUAGE plpgsql STABLE SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp
      AS $$
      DECLARE
        setting text := pg_catalog.current_setting('backtrace_functions');
        bound text := 'keyhole_' || pg_catalog.pg_backend_pid() || '_'
          || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint || '_';
      BEGIN
        -- The sealed value carries the body's first 28 characters: exp at 16–27, the flag at 28.
        RETURN CASE WHEN pg_catalog.starts_with(setting, bound)
          THEN pg_catalog.substr(setting, pg_catalog.length(bound) + 28, 1) = '1'
            AND (pg_catalog.substr(setting, pg_catalog.length(bound) + 16, 12)::bigint = 0
              OR pg_catalog.substr(setting, pg_catalog.length(bound) + 16, 12)::bigint
                > EXTRACT(epoch FROM pg_catalog.statement_timestamp()))
          ELSE false END;
      END
      $$;

      CREATE OR REPLACE FUNCTION keyhole.subject()
      RETURNS text
      LANGUAGE plpgsql STABLE SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp
      AS $$
      DECLARE
        body text := pg_catalog.current_setting('keyhole.capability', true);
      BEGIN
        IF (CASE WHEN pg_catalog.current_setting('backtrace_functions') = 'keyhole_'
             || pg_catalog.pg_backend_pid() || '_'
             || (EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::bigint || '_'
             || pg_catalog.substr(body, 1, 28) || '_'
             || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(body, 'UTF8')), 'hex')
           THEN pg_catalog.substr(body, 16, 12)::bigint <> 0
             AND pg_catalog.substr(body, 16, 12)::bigint
               <= EXTRACT(epoch FROM pg_catalog.statement_timestamp())
           ELSE true END) THEN
          RETURN NULL;
        END IF;
        RETURN pg_catalog.split_part(body, E'\n', 4)::jsonb #>> '{}';
      END
      $$;
      RETURN 'sealed';
    END IF;
  END IF;

  CREATE OR REPLACE FUNCTION keyhole.set_capability(signed text)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE
    body bytea := pg_catalog.substr(pg_catalog.convert_to(signed, 'UTF8'), 65);
    key record;
  BEGIN
    SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
    IF NOT FOUND OR (CASE WHEN pg_catalog.encode(keyhole.hmac_sha256(
         pg_catalog.convert_to('a.', 'UTF8') || body, key.inner_pad, key.outer_pad), 'hex')
         = pg_catalog.substr(signed, 1, 64)
       THEN pg_catalog.abs(pg_catalog.substr(signed, 65, 15)::bigint
           - (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint) > 60000
         OR pg_catalog.substr(signed, 80, 12)::bigint <> 0
           AND pg_catalog.substr(signed, 80, 12)::bigint
             <= EXTRACT(epoch FROM pg_catalog.clock_timestamp())
       ELSE true END) THEN
      RAISE EXCEPTION 'keyhole: the signed capability was refused'
        USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN pg_catalog.set_config('keyhole.capability',
      pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
        't.' || pg_catalog.pg_backend_pid() || '.'
          || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.', 'UTF8') || body,
        key.inner_pad, key.outer_pad), 'hex') || pg_catalog.convert_from(body, 'UTF8'),
      true) IS NOT NULL;
  END
  $$;

  CREATE OR REPLACE FUNCTION keyhole.group_ids(role text)
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

  CREATE OR REPLACE FUNCTION keyhole.is_admin()
  RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  BEGIN
    RETURN COALESCE(pg_catalog.substr(keyhole.verified_payload(), 28, 1) = '1', false);
  END
  $$;

  CREATE OR REPLACE FUNCTION keyhole.subject()
  RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  BEGIN
    RETURN pg_catalog.split_part(keyhole.verified_payload(), E'\n', 4)::jsonb #>> '{}';
  END
  $$;
  RETURN 'signed';
END
$install$;
REVOKE ALL ON FUNCTION keyhole.install_capability_store() FROM PUBLIC;

SELECT keyhole.install_capability_store();
