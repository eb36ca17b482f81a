-- Which kinds of verified factor a user has (bit 0 TOTP, bit 1 passkey), kept on the user's row
-- by the triggers below (issue #11: every call costs the same at a million users).
--
-- Why: every read of a user (the login's lookup, GET /auth/user, each row of the admin's user
-- list) derived the flags with a subquery over the user's factors: one more random index
-- descent per user. At a million accounts a page of 100 users in the admin list spent most of
-- its time there (Python's sqlite3, 50 users a page: 505 us with the subquery, 323 with a
-- covering index, and none of it with the column).
--
-- The triggers fire on every path that can change the answer (a factor inserted verified, its
-- verification, its kind or owner changing, its removal, the user's MFA reset), whatever the
-- code that runs it, in the same transaction. They do not fire on the writes a login makes
-- (`last_step`, `sign_count`, `last_used_at`): UPDATE OF names the columns that matter.
-- A user's deletion cascades to its factors after the user's row is gone; the trigger's
-- UPDATE then finds no row.

ALTER TABLE users ADD COLUMN factor_kinds INTEGER NOT NULL DEFAULT 0;

UPDATE users SET factor_kinds =
    (SELECT COALESCE(MAX(f.kind = 'totp'), 0) | (COALESCE(MAX(f.kind = 'webauthn'), 0) << 1)
     FROM factors f WHERE f.user_id = users.id AND f.verified_at IS NOT NULL)
WHERE id IN (SELECT user_id FROM factors WHERE verified_at IS NOT NULL);

CREATE TRIGGER factors_kinds_after_insert AFTER INSERT ON factors
WHEN NEW.verified_at IS NOT NULL
BEGIN
    UPDATE users SET factor_kinds =
        (SELECT COALESCE(MAX(f.kind = 'totp'), 0) | (COALESCE(MAX(f.kind = 'webauthn'), 0) << 1)
         FROM factors f WHERE f.user_id = users.id AND f.verified_at IS NOT NULL)
    WHERE id = NEW.user_id;
END;

CREATE TRIGGER factors_kinds_after_update AFTER UPDATE OF verified_at, kind, user_id ON factors
BEGIN
    UPDATE users SET factor_kinds =
        (SELECT COALESCE(MAX(f.kind = 'totp'), 0) | (COALESCE(MAX(f.kind = 'webauthn'), 0) << 1)
         FROM factors f WHERE f.user_id = users.id AND f.verified_at IS NOT NULL)
    WHERE id IN (OLD.user_id, NEW.user_id);
END;

CREATE TRIGGER factors_kinds_after_delete AFTER DELETE ON factors
WHEN OLD.verified_at IS NOT NULL
BEGIN
    UPDATE users SET factor_kinds =
        (SELECT COALESCE(MAX(f.kind = 'totp'), 0) | (COALESCE(MAX(f.kind = 'webauthn'), 0) << 1)
         FROM factors f WHERE f.user_id = users.id AND f.verified_at IS NOT NULL)
    WHERE id = OLD.user_id;
END;
