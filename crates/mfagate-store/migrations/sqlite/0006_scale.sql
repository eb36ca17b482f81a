-- Indexes the query-plan test asked for (issue: scale), so that no per-user statement and no
-- clean-up batch reads a whole table.

-- The clean-up of expired setup tokens.
CREATE INDEX setup_tokens_by_expiry ON setup_tokens (expires_at);

-- A user's e-mail keys, used or not: ending them, and SQLite's foreign-key checks on users rows
-- (the partial index on unused keys cannot serve those).
CREATE INDEX email_keys_of_user ON email_keys (user_id);
DROP INDEX email_keys_by_user;

-- A user's newest audit events (by id, the order they were written), and retention by age.
CREATE INDEX audit_events_of_user ON audit_events (user_id, id);
DROP INDEX audit_events_by_user;
CREATE INDEX audit_events_by_time ON audit_events (at);

-- The administrators' user list, page after page (keyset pagination).
CREATE INDEX users_by_creation ON users (created_at, id);

-- The clean-up of spent challenges and used recovery codes, which serve nothing once spent.
CREATE INDEX challenges_spent ON challenges (spent_at) WHERE spent_at IS NOT NULL;
CREATE INDEX recovery_codes_used ON recovery_codes (used_at) WHERE used_at IS NOT NULL;
