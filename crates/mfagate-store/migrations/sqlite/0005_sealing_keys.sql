-- The sealing keys the database holds data under (their ids, which derive from the keys). At
-- start-up a key set that cannot open one of them is refused, with the missing id named,
-- instead of serving and failing on the first TOTP code.
CREATE TABLE sealing_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    recorded_at INTEGER NOT NULL
);

-- A database from an earlier release: record the keys its sealed values name (once, here).
INSERT OR IGNORE INTO sealing_keys (key_id, recorded_at)
SELECT key_id, CAST(strftime('%s', 'now') AS INTEGER) FROM (
    SELECT DISTINCT substr(secret_sealed, 1, instr(secret_sealed, '.') - 1) AS key_id FROM totp_devices
    UNION SELECT DISTINCT substr(code_sealed, 1, instr(code_sealed, '.') - 1) FROM recovery_codes
    UNION SELECT DISTINCT substr(private_sealed, 1, instr(private_sealed, '.') - 1) FROM signing_keys
) WHERE key_id <> '';
