-- Which kinds of verified factor a user has (bit 0 TOTP, bit 1 passkey), kept on the user's row
-- by a trigger (issue #11; SQLite's migration 0011 is the same). Every read of a user (the
-- login's lookup, GET /auth/user, each row of the admin's user list) derived the flags with a
-- subquery over the user's factors: one more index probe per user, which at a million accounts
-- held the admin list to 78 % of its rate at 30,000.
--
-- The trigger fires on every change that can alter the answer (a factor inserted verified, its
-- verification, its kind or owner changing, its removal), whatever the code that makes it, in
-- the same transaction; not on the writes a login makes (`last_step`, `sign_count`,
-- `last_used_at`). It locks the user's row before it reads the factors, in a statement of its
-- own: under READ COMMITTED that read then sees every factor change committed by a
-- transaction that held the lock before, so two concurrent enrolments cannot leave a stale
-- answer behind.

ALTER TABLE users ADD COLUMN factor_kinds INTEGER NOT NULL DEFAULT 0;

UPDATE users u SET factor_kinds = k.kinds
FROM (SELECT user_id,
             bool_or(kind = 'totp')::INT | (bool_or(kind = 'webauthn')::INT << 1) AS kinds
      FROM factors WHERE verified_at IS NOT NULL GROUP BY user_id) k
WHERE u.id = k.user_id;

CREATE FUNCTION factor_kinds_recount(owner TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM users WHERE id = owner FOR UPDATE;
    UPDATE users SET factor_kinds =
        (SELECT COALESCE(bool_or(f.kind = 'totp'), FALSE)::INT
              | (COALESCE(bool_or(f.kind = 'webauthn'), FALSE)::INT << 1)
         FROM factors f WHERE f.user_id = owner AND f.verified_at IS NOT NULL)
    WHERE id = owner;
END $$;

CREATE FUNCTION factor_kinds_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM factor_kinds_recount(OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        PERFORM factor_kinds_recount(NEW.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER factors_kinds_after_insert AFTER INSERT ON factors
    FOR EACH ROW WHEN (NEW.verified_at IS NOT NULL) EXECUTE FUNCTION factor_kinds_follow();
CREATE TRIGGER factors_kinds_after_update AFTER UPDATE OF verified_at, kind, user_id ON factors
    FOR EACH ROW EXECUTE FUNCTION factor_kinds_follow();
CREATE TRIGGER factors_kinds_after_delete AFTER DELETE ON factors
    FOR EACH ROW WHEN (OLD.verified_at IS NOT NULL) EXECUTE FUNCTION factor_kinds_follow();
