-- Each group's invite code, a critical value: keyhole encrypts it before it reaches SQL
-- (policies.ts: `encrypted: ['invite_code']`, AES-256-GCM under KEYHOLE_DATA_KEY, the table, column
-- and group ID bound in), so the column holds keyhole's ciphertext text, kh1.<key ID>.<base64url>,
-- and never a code: a dump, a backup or an injected SELECT shows no code in clear.
--
-- The check refuses anything else, so that a code written past keyhole (a hand-written INSERT, a
-- bug) fails instead of lying there in clear. No blind index: a code is read by its group, never
-- looked up by its value.
--
-- NULL: no code yet. Groups created before this migration (or inserted by hand) have none until a
-- moderator makes one (POST /groups/:groupId/invite-code); SQL cannot give them one, as only the
-- application holds the key. POST /groups always sets one.
ALTER TABLE groups
  ADD COLUMN invite_code text
  CONSTRAINT groups_invite_code_encrypted
  CHECK (invite_code ~ '^kh1\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]+$');
