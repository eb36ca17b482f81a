-- A challenge's token names its row (`<id>.<secret>`, mfagate_core::secret::token_naming): the
-- row is found by its primary key and the token proved against `token_hash` by the caller, so
-- `token_hash` needs no index (issue #11). Its UNIQUE index took a random page at every
-- login's insert: 1.1 of the 12 WAL pages a login with TOTP wrote, and at a million accounts a
-- page of its own each time. SQLite cannot drop a column's UNIQUE constraint, so the table is
-- made again, with the same columns and indexes.
--
-- Rows made before this have tokens without an id. Such a token names the row whose id is the
-- token's hash (`token_row`), so those rows take their `token_hash` as their id: a login in
-- flight across the upgrade carries on. (An e-mailed code of such a login was keyed to the old
-- id: it no longer matches, and "send the code again" gives one that does.)

CREATE TABLE challenges_keyed (
    id                 TEXT PRIMARY KEY NOT NULL,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash         TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    failures           INTEGER NOT NULL DEFAULT 0,
    spent_at           INTEGER,
    email_code_hash    TEXT,
    email_sent_at      INTEGER,
    email_sends        INTEGER NOT NULL DEFAULT 0,
    email_prev_hash    TEXT,
    email_prev_sent_at INTEGER,
    webauthn_state     TEXT,
    session_id         TEXT
);

INSERT INTO challenges_keyed (id, user_id, token_hash, created_at, expires_at, failures,
                              spent_at, email_code_hash, email_sent_at, email_sends,
                              email_prev_hash, email_prev_sent_at, webauthn_state, session_id)
SELECT token_hash, user_id, token_hash, created_at, expires_at, failures,
       spent_at, email_code_hash, email_sent_at, email_sends,
       email_prev_hash, email_prev_sent_at, webauthn_state, session_id
FROM challenges;

DROP TABLE challenges;
ALTER TABLE challenges_keyed RENAME TO challenges;

CREATE INDEX challenges_by_user ON challenges (user_id, expires_at);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);
CREATE INDEX challenges_spent ON challenges (spent_at) WHERE spent_at IS NOT NULL;
