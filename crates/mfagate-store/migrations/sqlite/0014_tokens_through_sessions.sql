-- A refresh token belongs to its user through its session (issue #11). Its own index by user
-- (`refresh_tokens_by_user`) took a random page at every login and at every refresh, 6 % of a
-- login's WAL pages at a million accounts, and 1 of the 3-4 random pages the clean-up writes
-- per expired token; `sessions_of_user` already finds a user's sessions, and
-- `refresh_tokens_by_family` a session's tokens. Deleting a user deletes their sessions
-- (`sessions.user_id` cascades) and those delete their tokens (`family_id` below cascades),
-- each through an index. SQLite cannot change a foreign key, so the table is made again.
--
-- A token whose session is gone can only be an expired one (a session's expiry is its newest
-- token's, and the clean-up deletes a session only past it); such rows are left behind here.

CREATE TABLE refresh_tokens_of_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    family_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    amr        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER,
    auth_time  INTEGER
);

INSERT INTO refresh_tokens_of_sessions (id, token_hash, user_id, family_id, amr, created_at,
                                        expires_at, used_at, revoked_at, auth_time)
SELECT id, token_hash, user_id, family_id, amr, created_at,
       expires_at, used_at, revoked_at, auth_time
FROM refresh_tokens
WHERE family_id IN (SELECT id FROM sessions)
ORDER BY rowid;

DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_of_sessions RENAME TO refresh_tokens;

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
