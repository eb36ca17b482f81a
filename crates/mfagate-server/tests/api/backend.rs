//! Which database the suite runs on. SQLite always; PostgreSQL when `MFAGATE_TEST_BACKEND=postgres`
//! (with `MFAGATE_TEST_POSTGRES_URL`), each test in a fresh database dropped afterwards.

pub fn postgres_selected() -> bool {
    std::env::var("MFAGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

pub fn postgres_url() -> String {
    std::env::var("MFAGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("this test needs PostgreSQL: set MFAGATE_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test")
    })
}

/// A database created for one test; dropped (with its connections) when this is dropped.
pub struct PgDatabase {
    pub url: String,
    _database: mfagate_store::testing::TempPgDatabase,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let database = mfagate_store::testing::TempPgDatabase::create(&postgres_url())
            .await
            .expect("PostgreSQL answers and creates a database");
        Self {
            url: database.url.clone(),
            _database: database,
        }
    }
}
