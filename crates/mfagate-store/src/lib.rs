//! Implementations of `mfagate_core::Store`. One per database, each with its own migrations; no
//! `if sqlite` inside a query.

mod migrations;
pub mod postgres;
pub mod sqlite;
pub mod testing;

pub use postgres::{PgPoolSettings, PgStore};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use mfagate_core::{Store, StoreError};

/// A unique violation, named for what it means to the user. `constraint` is what the database
/// reports: SQLite's `table.column, ...` list or PostgreSQL's constraint name, so both stores
/// classify alike (a factor's name taken is not a username taken).
pub(crate) fn conflict(constraint: &str) -> StoreError {
    let what = if constraint.contains("factors") && constraint.contains("name") {
        "the user already has a factor of this name"
    } else if constraint.contains("credential") {
        "this credential is enrolled already"
    } else if constraint.contains("users") {
        "a user with this username or e-mail already exists"
    } else {
        "this exists already"
    };
    StoreError::Conflict(what.into())
}

/// Opens the store named by a database URL (`sqlite://PATH` or `postgres://...`) and applies
/// pending migrations.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(database_url, PgPoolSettings::default()).await
}

/// `open`, with PostgreSQL pool settings.
pub async fn open_with(
    database_url: &str,
    pool: PgPoolSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        let store = SqliteStore::connect_with(database_url, pool.sqlite_full_sync).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        let store = PgStore::connect(database_url, pool).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::Other(format!(
        "the database URL '{}' names no database mfagate knows: use sqlite://PATH (relative), \
         sqlite:///PATH (absolute) or postgres://USER:PASSWORD@HOST:PORT/DB",
        redact_url(database_url)
    )))
}

/// The URL without credentials, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_are_named_for_what_they_mean() {
        let said = |constraint: &str| match conflict(constraint) {
            StoreError::Conflict(what) => what,
            other => panic!("{other}"),
        };
        // SQLite's column lists and PostgreSQL's constraint names alike.
        assert!(said("UNIQUE constraint failed: users.username_lower").contains("username"));
        assert!(said("users users_email_lower_key").contains("username or e-mail"));
        assert!(
            said("UNIQUE constraint failed: factors.user_id, factors.name_lower")
                .contains("factor of this name")
        );
        assert!(said("factors factors_name_of_user").contains("factor of this name"));
        assert!(said("factors factors_by_credential").contains("credential"));
        assert_eq!(
            said("refresh_tokens refresh_tokens_pkey"),
            "this exists already"
        );
    }
}

/// How an enrolment changes the user's preferred method (each store runs its dialect's
/// statement for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefer {
    /// The user's first TOTP factor: TOTP becomes the preferred method (v1's activation).
    Totp,
    /// A passkey: preferred when the user had no preference.
    WebauthnIfNone,
    Unchanged,
}

impl Prefer {
    /// For a verified factor of `kind` (as stored); `first_totp` when it is the user's first.
    pub(crate) fn after_enrolment(kind: &str, first_totp: bool) -> Self {
        if kind == mfagate_core::FactorKind::Webauthn.as_str() {
            Self::WebauthnIfNone
        } else if first_totp {
            Self::Totp
        } else {
            Self::Unchanged
        }
    }
}
