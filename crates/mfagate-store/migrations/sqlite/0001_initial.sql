-- mfagate schema, SQLite. Times are Unix seconds (UTC).

CREATE TABLE users (
    id               TEXT PRIMARY KEY NOT NULL,
    username         TEXT NOT NULL,
    username_lower   TEXT NOT NULL UNIQUE,
    email            TEXT NOT NULL,
    email_lower      TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    email_verified   INTEGER NOT NULL DEFAULT 0,
    is_admin         INTEGER NOT NULL DEFAULT 0,
    disabled         INTEGER NOT NULL DEFAULT 0,
    preferred_method TEXT NOT NULL DEFAULT 'none',
    created_at       INTEGER NOT NULL
);

CREATE TABLE totp_devices (
    user_id       TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- XChaCha20-Poly1305, see mfagate_core::sealing; never the plain secret.
    secret_sealed TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    -- Replay guard: the last accepted time step.
    last_step     INTEGER
);

CREATE TABLE recovery_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_sealed TEXT NOT NULL,
    used_at     INTEGER
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id) WHERE used_at IS NULL;

CREATE TABLE challenges (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    spent_at   INTEGER
);
CREATE INDEX challenges_by_user ON challenges (user_id, expires_at);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);

CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX setup_tokens_by_user ON setup_tokens (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT NOT NULL,
    amr        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE throttle_windows (
    key          TEXT PRIMARY KEY NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    count        INTEGER NOT NULL
);
CREATE INDEX throttle_windows_by_end ON throttle_windows (window_end);

CREATE TABLE audit_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    user_id TEXT,
    event   TEXT NOT NULL,
    ip      TEXT,
    detail  TEXT
);
CREATE INDEX audit_events_by_user ON audit_events (user_id, at);
