-- mfagate schema, PostgreSQL. Times are Unix seconds (UTC), as in the SQLite schema.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL,
    username_lower   TEXT NOT NULL UNIQUE,
    email            TEXT NOT NULL,
    email_lower      TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    email_verified   BOOLEAN NOT NULL DEFAULT FALSE,
    is_admin         BOOLEAN NOT NULL DEFAULT FALSE,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    preferred_method TEXT NOT NULL DEFAULT 'none',
    email_otp        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL
);

CREATE TABLE totp_devices (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    last_step     BIGINT
);

CREATE TABLE recovery_codes (
    id          BIGSERIAL PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_sealed TEXT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id) WHERE used_at IS NULL;

CREATE TABLE challenges (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash         TEXT NOT NULL UNIQUE,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    failures           BIGINT NOT NULL DEFAULT 0,
    spent_at           BIGINT,
    email_code_hash    TEXT,
    email_sent_at      BIGINT,
    email_sends        BIGINT NOT NULL DEFAULT 0,
    email_prev_hash    TEXT,
    email_prev_sent_at BIGINT
);
CREATE INDEX challenges_by_user ON challenges (user_id, expires_at);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);

CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX setup_tokens_by_user ON setup_tokens (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT NOT NULL,
    amr        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE throttle_windows (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    count        BIGINT NOT NULL
);
CREATE INDEX throttle_windows_by_end ON throttle_windows (window_end);

CREATE TABLE audit_events (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    user_id TEXT,
    event   TEXT NOT NULL,
    ip      TEXT,
    detail  TEXT
);
CREATE INDEX audit_events_by_user ON audit_events (user_id, at);

CREATE TABLE email_keys (
    key_hash   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX email_keys_by_expiry ON email_keys (expires_at);

-- Ed25519 keys for EdDSA access tokens, the private half sealed; shared by every instance.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    private_sealed TEXT NOT NULL,
    public_key     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT
);
