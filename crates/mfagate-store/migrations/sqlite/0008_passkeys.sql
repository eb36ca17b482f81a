-- Passkeys (issue: passkeys). A login challenge of a user with passkeys carries its WebAuthn
-- ceremony (sealed): any instance can finish what another began, and it dies with the
-- challenge. A passwordless login's ceremony lives under a single-use passkey token.

ALTER TABLE challenges ADD COLUMN webauthn_state TEXT;

CREATE TABLE passkey_tokens (
    -- SHA-256 of the token handed to the client; only the hash is stored.
    token_hash   TEXT PRIMARY KEY NOT NULL,
    -- The ceremony (challenge bytes, allowed credentials, user it was begun for), sealed.
    state_sealed TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX passkey_tokens_by_expiry ON passkey_tokens (expires_at);
