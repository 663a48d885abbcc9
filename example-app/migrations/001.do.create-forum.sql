-- The forum's tables. Every row carries its "keyhole": a group column, directly (groups,
-- discussion_threads) or through its parent row (posts → discussion_threads). Keys are UUIDs so
-- that an ID reveals nothing about how many rows exist or which were created when.
--
-- Row-level security is not written here: keyhole generates it from example-app/policies.ts, the
-- same definitions the handlers use, and applies it after these migrations (enabled and forced).

CREATE TABLE groups (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100)
);

CREATE TABLE discussion_threads (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  group_id uuid NOT NULL REFERENCES groups (id),
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Every guarded read filters on group_id (`group_id = ANY ($n::uuid[])`); newest first per group.
CREATE INDEX discussion_threads_group_id_idx ON discussion_threads (group_id, created_at DESC);

CREATE TABLE posts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  thread_id uuid NOT NULL REFERENCES discussion_threads (id) ON DELETE CASCADE,
  content text NOT NULL CHECK (length(content) BETWEEN 1 AND 10000),
  author text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The posts guard reaches the group through thread_id; oldest first per thread.
CREATE INDEX posts_thread_id_idx ON posts (thread_id, created_at);
