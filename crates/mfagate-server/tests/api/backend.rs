//! Which database the suite runs on. SQLite always; PostgreSQL when `MFAGATE_TEST_BACKEND=postgres`
//! (with `MFAGATE_TEST_POSTGRES_URL`), each test in a fresh database dropped afterwards.

use sqlx::{Connection, Executor, PgConnection};

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
    admin_url: String,
    name: String,
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    format!("{base}/{name}{query}")
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin_url = postgres_url();
        let name = format!("mfagate_test_{}", mfagate::core::secret::new_id());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL answers");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async: a short-lived runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()
            })
        })
        .join();
    }
}
