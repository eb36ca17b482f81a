-- The sealing keys the database holds data under (their ids, which derive from the keys). At
-- start-up a key set that cannot open one of them is refused, with the missing id named,
-- instead of serving and failing on the first TOTP code.
CREATE TABLE sealing_keys (
    key_id TEXT PRIMARY KEY,
    recorded_at BIGINT NOT NULL
);

-- A database from an earlier release: record the keys its sealed values name (once, here).
INSERT INTO sealing_keys (key_id, recorded_at)
SELECT key_id, extract(epoch FROM now())::BIGINT FROM (
    SELECT split_part(secret_sealed, '.', 1) AS key_id FROM totp_devices
    UNION SELECT split_part(code_sealed, '.', 1) FROM recovery_codes
    UNION SELECT split_part(private_sealed, '.', 1) FROM signing_keys
) AS sealed WHERE key_id <> ''
ON CONFLICT DO NOTHING;
