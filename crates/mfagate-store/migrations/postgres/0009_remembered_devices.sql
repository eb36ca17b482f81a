-- Remember this device (issue: step-up and sessions). A device token lets a password alone
-- finish a login of its user for a while; only its hash is stored. It dies with every event
-- that changes how the user proves who they are (factor added or removed, password changed or
-- reset, MFA reset, sign out everywhere), in the same transaction.

CREATE TABLE remembered_devices (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX remembered_devices_of_user ON remembered_devices (user_id);
CREATE INDEX remembered_devices_by_expiry ON remembered_devices (expires_at);
