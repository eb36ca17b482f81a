-- A refresh token names its row (`<id>.<secret>`, mfagate_core::secret::token_naming), as a
-- challenge's does since migration 12: the row is found by an ordered id, and only with the
-- hash of the whole token (issue #11). The primary key was the token's hash, random, so every
-- login and every refresh wrote a random page of it; the inserts of one commit now share the
-- last page of the id's index. SQLite cannot change a primary key, so the table is made again,
-- with the same columns, an `id` in front, and the same indexes.
--
-- A token made before this has no id in it: it names the row whose id is its hash
-- (`token_row`), so the rows then stored take their `token_hash` as their id, and every session
-- carries on across the upgrade.

CREATE TABLE refresh_tokens_keyed (
    id         TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT NOT NULL,
    amr        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER,
    auth_time  INTEGER
);

INSERT INTO refresh_tokens_keyed (id, token_hash, user_id, family_id, amr, created_at,
                                  expires_at, used_at, revoked_at, auth_time)
SELECT token_hash, token_hash, user_id, family_id, amr, created_at,
       expires_at, used_at, revoked_at, auth_time
FROM refresh_tokens;

DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_keyed RENAME TO refresh_tokens;

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
