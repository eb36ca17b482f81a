-- A refresh token belongs to its user through its session (issue #11), as on SQLite
-- (migration 14 there, which says why): its index by user goes, a user's tokens are found
-- through `sessions_of_user` and `refresh_tokens_by_family`, and deleting a user deletes their
-- sessions, which delete their tokens.
--
-- A token whose session is gone can only be an expired one (a session's expiry is its newest
-- token's, and the clean-up deletes a session only past it); such rows are deleted here.

DELETE FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.family_id);
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_user_id_fkey;
ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_family_id_fkey
    FOREIGN KEY (family_id) REFERENCES sessions (id) ON DELETE CASCADE;
DROP INDEX refresh_tokens_by_user;
