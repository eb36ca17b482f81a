-- Credentials that end together (issue: limits and revocation).

-- Moved on by every event that ends a user's credentials; pending enrolments carry the epoch
-- they began in and are refused once it has moved.
ALTER TABLE users ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;

-- When the user last proved who they are, carried from a login to every rotated token.
ALTER TABLE refresh_tokens ADD COLUMN auth_time BIGINT;

-- Ending a user's invitation and reset keys without scanning every key.
CREATE INDEX email_keys_by_user ON email_keys (user_id) WHERE used_at IS NULL;

-- Replacing or deleting a user's recovery codes (enrolment, regeneration, MFA reset) names every
-- code of the user, used ones too, which the partial index on unused codes cannot find.
CREATE INDEX recovery_codes_of_user ON recovery_codes (user_id);
