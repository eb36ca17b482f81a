-- The clean-up's indexes, each on its time plus nothing (`expires_at + 0`), so that they serve
-- the clean-up alone, which says `expires_at + 0 <= $1 ORDER BY expires_at + 0`, and no
-- statement that names a row, a token or a user by its key can be planned through them.
--
-- On the bare column they served every per-request statement that asks for a live row
-- (`WHERE id = $1 ... AND expires_at > $2`), and PostgreSQL used them whenever the statistics
-- made them look cheap, even in generic plans: once a table was analysed nearly empty after a
-- mass delete (the clean-up after a backlog; on a busy server, every few minutes for
-- challenges, which live five), its b-trees keep their pages, the text primary key has more of
-- them per row than the bigint expiry, and the spend of a challenge at `mfa/verify` walked
-- every live challenge of every user through `challenges_by_expiry` (issue #11: 100 buffers a
-- spend at a million accounts, named with auto_explain; the query-plan test's fourth pass).
--
-- The migration runs in one transaction, and DROP INDEX locks its table for reads and writes:
-- the ten tables stay locked until all ten indexes are built (seconds to tens of seconds at a
-- million accounts). Upgrade in a quiet minute.
DROP INDEX challenges_by_expiry;
CREATE INDEX challenges_by_expiry ON challenges ((expires_at + 0));
DROP INDEX setup_tokens_by_expiry;
CREATE INDEX setup_tokens_by_expiry ON setup_tokens ((expires_at + 0));
DROP INDEX refresh_tokens_by_expiry;
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens ((expires_at + 0));
DROP INDEX throttle_windows_by_end;
CREATE INDEX throttle_windows_by_end ON throttle_windows ((window_end + 0));
DROP INDEX email_keys_by_expiry;
CREATE INDEX email_keys_by_expiry ON email_keys ((expires_at + 0));
DROP INDEX request_windows_by_end;
CREATE INDEX request_windows_by_end ON request_windows ((window_end + 0));
DROP INDEX factors_pending;
CREATE INDEX factors_pending ON factors ((pending_expires_at + 0));
DROP INDEX remembered_devices_by_expiry;
CREATE INDEX remembered_devices_by_expiry ON remembered_devices ((expires_at + 0));
DROP INDEX sessions_by_expiry;
CREATE INDEX sessions_by_expiry ON sessions ((expires_at + 0));
DROP INDEX passkey_tokens_by_expiry;
CREATE INDEX passkey_tokens_by_expiry ON passkey_tokens ((expires_at + 0));
