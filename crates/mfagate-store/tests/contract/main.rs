//! The store contract: each intent's guarantee, checked against the store itself (no HTTP),
//! on SQLite, or on PostgreSQL with `MFAGATE_TEST_BACKEND=postgres` and
//! `MFAGATE_TEST_POSTGRES_URL` (each test in a database of its own, dropped after). The races
//! run N callers at once on a multi-threaded runtime: of N concurrent uses of a one-time thing,
//! exactly one wins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test: a failure is the test failing"
)]

mod backend;
mod challenges;
mod factors;
mod passkeys;
mod recovery_codes;
mod sessions;
mod throttle;
mod tokens;
mod users;
