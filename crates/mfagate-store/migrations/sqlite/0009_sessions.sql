-- Sessions (issue: step-up and sessions). A session is one login's family of refresh tokens;
-- this row says where and how it began (IP and user agent seen at login, amr) and when it was
-- last used. Its tokens stay in refresh_tokens; a session is live while one of them is.
-- A reauthentication's challenge remembers the session it continues.

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,   -- the refresh family's id (the `sid` claim)
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr          TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    -- The expiry of its newest refresh token: past it the session is over.
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_of_user ON sessions (user_id, created_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- The families of the earlier schema, each a session (without IP or user agent).
INSERT INTO sessions (id, user_id, amr, created_at, last_used_at, expires_at)
SELECT family_id, MIN(user_id), MIN(amr), MIN(created_at), MAX(created_at), MAX(expires_at)
FROM refresh_tokens GROUP BY family_id;

ALTER TABLE challenges ADD COLUMN session_id TEXT;
