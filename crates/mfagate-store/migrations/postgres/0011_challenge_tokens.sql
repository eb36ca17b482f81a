-- A challenge's token names its row (`<id>.<secret>`, mfagate_core::secret::token_naming): the
-- row is found by its primary key and the token proved against `token_hash` by the caller, so
-- `token_hash` needs no index (issue #11): its UNIQUE index took a random page at every login's
-- insert.
--
-- Rows made before this have tokens without an id. Such a token names the row whose id is the
-- token's hash (`token_row`), so those rows take their `token_hash` as their id: a login in
-- flight across the upgrade carries on. (An e-mailed code of such a login was keyed to the old
-- id: it no longer matches, and "send the code again" gives one that does.) During a rolling
-- upgrade, instances of the release before look challenges up by `token_hash` without its
-- index: upgrade every instance within a few minutes of each other.

ALTER TABLE challenges DROP CONSTRAINT IF EXISTS challenges_token_hash_key;
UPDATE challenges SET id = token_hash;
