-- keyhole's schema: the signing key and the functions row-level security policies call.
--
-- Applied by `keyhole setup` (and re-checked by `keyhole migrate`) as the MIGRATION role, which
-- owns the schema `keyhole` (created by setup). Setup grants EXECUTE on the four public functions
-- to the runtime role by name; nothing here is granted to PUBLIC.
--
-- The capability travels in two forms:
--
-- 1. The application signs it: `base64url(payload) '.' base64url(HMAC-SHA-256(key, 'a.' ||
--    base64url(payload)))`, the payload being JSON { v: 1, i: issued-at (ms), s: subject,
--    a: admin, r: roles lowest first, g: group IDs by their highest role (g[n] for r[n]),
--    e: the token's exp (s) or null }. It is sent only as a bind parameter of
--    `SELECT keyhole.set_capability($1)`, the first statement of the request's transaction: it
--    never sits in a setting, so SQL running as the runtime role cannot read it.
-- 2. set_capability verifies it (signature, issued within the last minute, not expired) and stores
--    a copy bound to THIS transaction in the transaction-local setting `keyhole.capability`:
--    `hex(HMAC(key, 't.' || pg_backend_pid() || '.' || transaction start (epoch, µs) || '.' ||
--    payload)) || payload`. The functions below recompute that HMAC, so a value read from the
--    setting (an injection can read its own setting) is worthless in any other transaction: the
--    pid or the transaction's start differs. No xid is needed (a read-only transaction has none and
--    assigning one costs), and the application does not need to know anything about the
--    transaction before sending: the binding is made inside it.
--
-- HMAC-SHA-256 is computed with the core sha256() (PostgreSQL 11+, in pg_catalog) from the key's
-- inner and outer pads (RFC 2104), precomputed by setup: no extension, so no extension schema to
-- trust on a fixed search_path. Comparing two HMACs with `=` is fine here: the attacker cannot time
-- a comparison against a key they do not hold for chosen inputs they could not have signed.
--
-- Every failure (missing, '' after a transaction-local set_config ended, malformed, forged,
-- tampered, expired, from another transaction, no key) reads as "no capability": no groups, not
-- admin, no subject. Nothing raises on attacker-controlled input: the format is checked with a
-- regular expression before anything is decoded, and JSON is parsed only after the signature
-- matched (so it is the application's own JSON).

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

-- The verified, transaction-bound payload, or NULL. Invoker rights: only keyhole's SECURITY
-- DEFINER functions (running as the owner) can read the key through it, and they run it under
-- their fixed search_path; it has no SET clause of its own, which would cost a settings save and
-- restore on every call (it runs on every policy check).
CREATE FUNCTION keyhole.verified_payload()
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  setting text := pg_catalog.current_setting('keyhole.capability', true);
  payload text;
  key record;
  claims jsonb;
BEGIN
  -- NULL on a fresh connection, '' after a transaction-local set_config ended.
  IF setting IS NULL OR pg_catalog.length(setting) < 66 THEN
    RETURN NULL;
  END IF;
  SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  payload := pg_catalog.substr(setting, 65);
  IF pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
       't.' || pg_catalog.pg_backend_pid() || '.'
         || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.' || payload,
       'UTF8'), key.inner_pad, key.outer_pad), 'hex')
     IS DISTINCT FROM pg_catalog.substr(setting, 1, 64) THEN
    RETURN NULL;
  END IF;
  claims := payload::jsonb;
  IF pg_catalog.jsonb_typeof(claims -> 'e') = 'number'
     AND (claims ->> 'e')::numeric <= EXTRACT(epoch FROM pg_catalog.statement_timestamp()) THEN
    RETURN NULL;
  END IF;
  RETURN claims;
END
$$;
REVOKE ALL ON FUNCTION keyhole.verified_payload() FROM PUBLIC;

-- Verifies the application's signed value and binds it to this transaction. Returns whether it
-- was accepted; on refusal the setting is cleared, so the transaction holds no capability.
CREATE FUNCTION keyhole.set_capability(signed text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  encoded text;
  key record;
  payload text;
  claims jsonb;
  now_ms numeric := EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000;
BEGIN
  PERFORM pg_catalog.set_config('keyhole.capability', '', true);
  IF signed IS NULL OR signed !~ '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$' THEN
    RETURN false;
  END IF;
  encoded := pg_catalog.split_part(signed, '.', 1);
  IF pg_catalog.length(encoded) % 4 = 1 THEN
    RETURN false;
  END IF;
  SELECT k.inner_pad, k.outer_pad INTO key FROM keyhole.signing_key AS k;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(keyhole.hmac_sha256(
       pg_catalog.convert_to('a.' || encoded, 'UTF8'), key.inner_pad, key.outer_pad), 'base64'),
       '+/', '-_'), '=')
     IS DISTINCT FROM pg_catalog.split_part(signed, '.', 2) THEN
    RETURN false;
  END IF;
  -- Signed by the application: from here on the payload is its own JSON.
  payload := pg_catalog.convert_from(pg_catalog.decode(pg_catalog.rpad(
    pg_catalog.translate(encoded, '-_', '+/'), (pg_catalog.length(encoded) + 3) / 4 * 4, '='),
    'base64'), 'UTF8');
  claims := payload::jsonb;
  -- Issued within the last minute (and not more than a minute ahead: clock skew): a signed value
  -- that leaked (a server log of bind parameters) is useless soon after.
  IF claims ->> 'v' IS DISTINCT FROM '1'
     OR pg_catalog.jsonb_typeof(claims -> 'i') IS DISTINCT FROM 'number'
     OR pg_catalog.abs((claims ->> 'i')::numeric - now_ms) > 60000
     OR (pg_catalog.jsonb_typeof(claims -> 'e') = 'number'
         AND (claims ->> 'e')::numeric * 1000 <= now_ms) THEN
    RETURN false;
  END IF;
  PERFORM pg_catalog.set_config('keyhole.capability',
    pg_catalog.encode(keyhole.hmac_sha256(pg_catalog.convert_to(
      't.' || pg_catalog.pg_backend_pid() || '.'
        || EXTRACT(epoch FROM pg_catalog.transaction_timestamp()) || '.' || payload,
      'UTF8'), key.inner_pad, key.outer_pad), 'hex') || payload,
    true);
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION keyhole.set_capability(text) FROM PUBLIC;

-- The holder's group IDs for `role` or a higher role; '{}' without a valid capability or for a
-- role outside the capability's hierarchy.
CREATE FUNCTION keyhole.group_ids(role text)
RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT ARRAY(
    SELECT id.value
    FROM keyhole.verified_payload() AS claims,
      pg_catalog.jsonb_array_elements(claims -> 'g') WITH ORDINALITY AS rank(ids, n),
      pg_catalog.jsonb_array_elements_text(rank.ids) AS id(value)
    WHERE rank.n > (
      SELECT r.n FROM pg_catalog.jsonb_array_elements_text(claims -> 'r') WITH ORDINALITY AS r(name, n)
      WHERE r.name = role) - 1
  )
$$;
REVOKE ALL ON FUNCTION keyhole.group_ids(text) FROM PUBLIC;

-- Whether the holder is an admin (everywhere); false without a valid capability.
CREATE FUNCTION keyhole.is_admin()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(
    (SELECT claims -> 'a' = 'true'::jsonb FROM keyhole.verified_payload() AS claims), false)
$$;
REVOKE ALL ON FUNCTION keyhole.is_admin() FROM PUBLIC;

-- The holder's subject; NULL without a valid capability.
CREATE FUNCTION keyhole.subject()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT claims ->> 's' FROM keyhole.verified_payload() AS claims
$$;
REVOKE ALL ON FUNCTION keyhole.subject() FROM PUBLIC;
