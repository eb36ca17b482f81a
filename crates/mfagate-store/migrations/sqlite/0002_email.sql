-- E-mailed codes, verification, invitation and reset keys.

ALTER TABLE users ADD COLUMN email_otp INTEGER NOT NULL DEFAULT 0;

-- The last e-mailed code of a challenge (keyed hash), when it went out and how many went out;
-- the previous code is kept aside so that a failed send can be undone.
ALTER TABLE challenges ADD COLUMN email_code_hash TEXT;
ALTER TABLE challenges ADD COLUMN email_sent_at INTEGER;
ALTER TABLE challenges ADD COLUMN email_sends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN email_prev_hash TEXT;
ALTER TABLE challenges ADD COLUMN email_prev_sent_at INTEGER;

CREATE TABLE email_keys (
    key_hash   TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX email_keys_by_expiry ON email_keys (expires_at);
