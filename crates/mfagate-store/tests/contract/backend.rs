//! A fresh store for one test, and the rows most tests start from.

use std::sync::Arc;

use mfagate_core::store::*;
use mfagate_core::Store;
use mfagate_store::testing::TempPgDatabase;

pub const NOW: i64 = 1_900_000_000;
/// Concurrent callers in each race.
pub const RACERS: usize = 16;

/// The store under test, with what must outlive it (a temporary directory, a database to drop).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The database's URL, for a test's own SQL (`mfagate_store::testing::execute`).
    pub url: String,
    _dir: tempfile::TempDir,
    _pg: Option<TempPgDatabase>,
}

impl TestStore {
    /// The PostgreSQL database under test, if it is one.
    pub fn postgres_url(&self) -> Option<&str> {
        self._pg.as_ref().map(|pg| pg.url.as_str())
    }
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

pub async fn store() -> TestStore {
    opened(|_| async {}).await
}

/// A store over a database that `before_open` prepared (by the URL), as a release before this
/// one left it; opening it applies the migrations it lacks.
pub async fn opened<F, Fut>(before_open: F) -> TestStore
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = if std::env::var("MFAGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
        let admin_url = std::env::var("MFAGATE_TEST_POSTGRES_URL")
            .expect("MFAGATE_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test");
        Some(
            TempPgDatabase::create(&admin_url)
                .await
                .expect("PostgreSQL creates a database"),
        )
    } else {
        None
    };
    let url = match &pg {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", dir.path().join("contract.db").display()),
    };
    before_open(url.clone()).await;
    let store = mfagate_store::open(&url).await.expect("store opens");
    TestStore {
        store,
        url,
        _dir: dir,
        _pg: pg,
    }
}

pub async fn user(store: &dyn Store, id: &str) -> User {
    store
        .create_user(&NewUser {
            id: id.into(),
            username: id.into(),
            email: format!("{id}@example.com"),
            password_hash: "$argon2id$test".into(),
            is_admin: false,
            created_at: NOW - 100,
        })
        .await
        .expect("user created")
}

/// A presented token as the rows these tests store name it: its id is its hash (as for tokens
/// made before tokens named their rows).
pub fn presented(hash: &str) -> PresentedToken {
    PresentedToken {
        id: hash.into(),
        token_hash: hash.into(),
    }
}

pub fn refresh(hash: &str, user: &str) -> NewRefreshToken {
    NewRefreshToken {
        id: hash.into(),
        token_hash: hash.into(),
        user_id: user.into(),
        family_id: format!("family-{hash}"),
        amr: "pwd mfa otp".into(),
        auth_time: NOW,
        created_at: NOW,
        expires_at: NOW + 3600,
        ip: None,
        user_agent: None,
    }
}

/// The user's first TOTP factor (as `totp/activate` makes it), with recovery codes.
pub async fn first_totp(store: &dyn Store, user: &str, factor: &str, codes: &[&str]) {
    let enabled = store
        .enable_totp(
            &TotpEnrolment {
                user_id: user.into(),
                factor_id: factor.into(),
                name: "Authenticator".into(),
                max_factors: 10,
                epoch: 0,
                setup_token_hash: None,
                secret_sealed: "k.sealed".into(),
                accepted_step: 100,
                recovery_codes_sealed: codes.iter().map(|c| c.to_string()).collect(),
                refresh: refresh(&format!("enrol-{factor}"), user),
            },
            NOW,
        )
        .await
        .expect("enable");
    assert_eq!(enabled, TotpEnabled::Enabled);
}

/// A pending TOTP factor named `name`.
pub async fn pending(store: &dyn Store, user: &str, id: &str, name: &str) -> FactorBegun {
    pending_of_kind(store, user, id, name, mfagate_core::FactorKind::Totp).await
}

/// A pending factor of `kind` named `name` (its sealed secret or ceremony is `k.{id}`).
pub async fn pending_of_kind(
    store: &dyn Store,
    user: &str,
    id: &str,
    name: &str,
    kind: mfagate_core::FactorKind,
) -> FactorBegun {
    store
        .begin_factor(
            &NewFactor {
                id: id.into(),
                user_id: user.into(),
                kind,
                name: name.into(),
                secret_sealed: Some(format!("k.{id}")),
                created_at: NOW,
                expires_at: NOW + 600,
            },
            10,
            100,
            None,
            NOW,
        )
        .await
        .expect("begin")
}

pub fn verification(user: &str, factor: &str, max_factors: u32) -> FactorVerification {
    FactorVerification {
        user_id: user.into(),
        factor_id: factor.into(),
        accepted_step: Some(100),
        passkey: None,
        recovery_codes_sealed: vec!["k.r1".into(), "k.r2".into()],
        setup_token_hash: None,
        refresh: refresh(&format!("verify-{factor}"), user),
        max_factors,
    }
}

/// Runs `n` copies of `f(i)` at once and returns their results.
pub async fn race<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("racer finished"));
    }
    out
}
