-- Several factors per user (issue: factors). A factor is one enrolled device: a TOTP
-- authenticator, or (later) a passkey. Every TOTP device of the earlier schema becomes a
-- verified factor named "Authenticator", keeping its secret, replay state and times.

CREATE TABLE factors (
    id                 TEXT PRIMARY KEY NOT NULL,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'totp' or 'webauthn' (mfagate_core::factors::FactorKind).
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    -- Names are unique per user, case-insensitively.
    name_lower         TEXT NOT NULL,
    -- TOTP: the secret, sealed (XChaCha20-Poly1305, see mfagate_core::sealing). WebAuthn: the
    -- credential's stored state, sealed.
    secret_sealed      TEXT,
    -- WebAuthn: the credential id (base64url), unique across users; its public key (COSE,
    -- base64url); the transports the browser reported (JSON array).
    credential_id      TEXT,
    public_key         TEXT,
    transports         TEXT,
    -- Replay state: TOTP the last accepted time step; WebAuthn the signature counter.
    last_step          INTEGER,
    sign_count         INTEGER,
    -- The order the user's factors were begun in (1, 2, ...): "oldest first", also within a
    -- second.
    seq                INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER,
    -- NULL while the enrolment is pending; it then dies at pending_expires_at.
    verified_at        INTEGER,
    pending_expires_at INTEGER
);
CREATE UNIQUE INDEX factors_name_of_user ON factors (user_id, name_lower);
CREATE INDEX factors_of_user ON factors (user_id, seq);
CREATE UNIQUE INDEX factors_by_credential ON factors (credential_id) WHERE credential_id IS NOT NULL;
CREATE INDEX factors_pending ON factors (pending_expires_at) WHERE verified_at IS NULL;

INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, last_step, created_at,
                     last_used_at, verified_at)
SELECT lower(hex(randomblob(16))), user_id, 'totp', 'Authenticator', 'authenticator',
       secret_sealed, last_step, created_at, last_used_at, created_at
FROM totp_devices;

DROP TABLE totp_devices;
