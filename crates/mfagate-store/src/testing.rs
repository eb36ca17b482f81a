//! For tests of code built on the stores (this crate's contract suite, the server's HTTP
//! suite): a PostgreSQL database created for one test and dropped, with its connections, when
//! the value is dropped.

// Database names are made here (a fixed prefix and hex), never taken from input.
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

#[derive(Debug)]
pub struct TempPgDatabase {
    /// The new database's URL.
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

impl TempPgDatabase {
    /// Creates a database with a fresh name on the server of `admin_url`.
    pub async fn create(admin_url: &str) -> Result<Self, sqlx::Error> {
        let name = format!("mfagate_test_{}", mfagate_core::secret::new_id());
        let mut conn = PgConnection::connect(admin_url).await?;
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_string(),
            name,
        })
    }
}

impl Drop for TempPgDatabase {
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
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .ok()
            })
        })
        .join();
    }
}
