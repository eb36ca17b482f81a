-- Ed25519 keys for EdDSA access tokens, the private half sealed.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY NOT NULL,
    private_sealed TEXT NOT NULL,
    public_key     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    retired_at     INTEGER
);
