-- A refresh token names its row (`<id>.<secret>`, mfagate_core::secret::token_naming), as a
-- challenge's does since migration 11: the row is found by an ordered id, and only with the
-- hash of the whole token (issue #11). The primary key was the token's hash, random, so every
-- login and every refresh wrote a random page of it.
--
-- A token made before this has no id in it: it names the row whose id is its hash
-- (`token_row`), so the rows then stored take their `token_hash` as their id, and every session
-- carries on across the upgrade. During a rolling upgrade, instances of the release before look
-- tokens up by `token_hash` without an index: upgrade every instance within a few minutes.

ALTER TABLE refresh_tokens ADD COLUMN id TEXT;
UPDATE refresh_tokens SET id = token_hash;
ALTER TABLE refresh_tokens ALTER COLUMN id SET NOT NULL;
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_pkey;
ALTER TABLE refresh_tokens ADD PRIMARY KEY (id);
