-- `factors_pending` is the clean-up's way to expired enrolments, oldest first. As a partial index
-- (`WHERE verified_at IS NULL`) it also matched every per-user statement about a pending
-- enrolment, and small as it is (few enrolments are pending at a time) PostgreSQL took it over
-- the user's own index: each such statement read every pending enrolment of every user (issue
-- #11; the query-plan test's third pass). On the expiry alone it serves no statement that names
-- a user; the clean-up's `pending_expires_at <= $1` never reaches the NULLs of verified factors.
DROP INDEX factors_pending;
CREATE INDEX factors_pending ON factors (pending_expires_at);
