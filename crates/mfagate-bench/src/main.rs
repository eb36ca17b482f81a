//! `cargo run --release -p mfagate-bench -- [--quick] [--database sqlite|postgres] [--users N]`
//! `cargo run --release -p mfagate-bench -- --scale`
//! `cargo run --release -p mfagate-bench -- --soak MINUTES [--database postgres] [--calm]` (see `soak.rs`)
//!
//! Starts the release server on a database seeded as ordinary use grows one (through the
//! store's import intent: factors, recovery codes, sessions, audit history, keys, expired rows),
//! drives load over HTTP, and reports every figure beside the HTTP ceiling of this machine (a
//! bare axum server measured in the same run with the same client). Writes a Markdown table to
//! stdout and JSON to `bench/results/latest.json`; `--scale` runs the quick suite at 30,000 and
//! at 1,000,000 users on SQLite and on PostgreSQL and writes `bench/results/scale-*.json`.

mod load;
mod passkeys;
mod seed;
mod server;
mod soak;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use mfagate_core::password::{self, Argon2Params};
use mfagate_core::secret::{new_id, SecretBytes};
use mfagate_core::totp::{self, TotpParams};
use mfagate_core::Keys;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use seed::SeededUser;

use load::LevelResult;
use server::{free_port, ServerProcess};

const PASSWORD: &str = "bench password 1";

/// The same allocator as the `mfagate` binary, so that the bare ceiling server is as well
/// equipped as the server measured against it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "mfagate load benchmark")]
struct Args {
    /// One concurrency (32) and short runs.
    #[arg(long)]
    quick: bool,
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(
        long,
        env = "MFAGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// Run only these scenarios (S0 always runs: it is the baseline), e.g. `--only S1,S2`;
    /// for profiling one flow. A results file from such a run lacks the others.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the results go (default `bench/results/latest.json`; a soak's
    /// `bench/results/soak-DATABASE.json`).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Accounts seeded before the scenarios run (default 30,000; 120,000 in full runs).
    #[arg(long)]
    users: Option<usize>,
    /// The quick suite at 30,000 and at `--large-users` accounts, on SQLite and on
    /// PostgreSQL: `bench/results/scale-sqlite.json` and `scale-postgres.json`.
    #[arg(long)]
    scale: bool,
    #[arg(long, default_value_t = 1_000_000)]
    large_users: usize,
    /// The databases `--scale` measures.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    scale_databases: Vec<String>,
    /// The server's per-IP request limit (`MFAGATE_IP_THROTTLE`): `off` by default, since every
    /// request of the load generator comes from one address; a huge rate such as
    /// `100000000/60` measures what counting every request costs.
    #[arg(long, default_value = "off")]
    ip_throttle: String,
    /// Seconds each scenario runs at each concurrency (quick: 3, full: 8); longer runs leave
    /// time to attach a profiler, e.g. `--only S2 --seconds 20` with `perf record -a -g`.
    #[arg(long)]
    seconds: Option<u64>,
    /// Mixed traffic for MINUTES while the server is killed and restarted at random moments;
    /// invariants checked throughout and at the end (`bench/results/soak-DATABASE.json`).
    #[arg(long, value_name = "MINUTES")]
    soak: Option<f64>,
    /// With `--soak`: no faults, one server life for the whole run, to see its resident memory
    /// level off (`bench/results/soak-DATABASE-calm.json`).
    #[arg(long, requires = "soak")]
    calm: bool,
    /// SQLite: keep each seeded database (with its accounts and key) in DIR and start later
    /// runs of the same size from a copy of it, so that an experiment at a million accounts
    /// does not wait for the seeding each time. (The copy is synced before the server starts.)
    #[arg(long, value_name = "DIR")]
    seed_cache: Option<PathBuf>,
    /// Measure S7 without waiting for the clean-up to finish afterwards (for repeated S7
    /// experiments on a large database; the steady-state scenarios then share the writer with
    /// the rest of the clean-up, so use it with `--only S7`).
    #[arg(long)]
    skip_cleanup_wait: bool,
    /// Internal: run the bare ceiling server on this port.
    #[arg(long, hide = true)]
    bare_server: Option<u16>,
}

/// A connection of the benchmark's own to the SQLite file a `sqlite://` URL names.
fn sqlite_connection(url: &str) -> Result<rusqlite::Connection, String> {
    let path = mfagate_store::sqlite::SqliteStore::database_path(url)
        .ok_or_else(|| format!("{url} names no SQLite file"))?;
    let connection = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(connection)
}

/// A fresh database for one deployment, removed afterwards.
enum Database {
    Sqlite { dir: PathBuf },
    Postgres { admin_url: String, name: String },
}

impl Database {
    async fn create(args: &Args, kind: &str) -> Result<(Database, String), String> {
        if kind == "postgres" {
            let name = format!("mfagate_bench_{}", new_id());
            let mut conn = sqlx::PgConnection::connect(&args.postgres_url)
                .await
                .map_err(|e| e.to_string())?;
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .map_err(|e| e.to_string())?;
            // The database name is the path's last segment; the query (such as
            // `?host=/var/run/postgresql` for the Unix socket) is kept as it is.
            let (address, query) = args
                .postgres_url
                .split_once('?')
                .map_or((args.postgres_url.as_str(), None), |(a, q)| (a, Some(q)));
            let base = address.rsplit_once('/').map_or(address, |(b, _)| b);
            let url = match query {
                Some(query) => format!("{base}/{name}?{query}"),
                None => format!("{base}/{name}"),
            };
            Ok((
                Database::Postgres {
                    admin_url: args.postgres_url.clone(),
                    name,
                },
                url,
            ))
        } else {
            let dir = std::env::temp_dir().join(format!("mfagate-bench-{}", new_id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            Ok((Database::Sqlite { dir }, url))
        }
    }

    async fn remove(self) {
        match self {
            Database::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Database::Postgres { admin_url, name } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            }
        }
    }
}

/// One running server on its own fresh database.
struct Deployment {
    url: String,
    server: ServerProcess,
    database: Database,
    users: Arc<Vec<SeededUser>>,
    /// The server's environment, for running its command line against the same database.
    env: Vec<(String, String)>,
}

async fn deploy(
    args: &Args,
    database_kind: &str,
    binary: &std::path::Path,
    profile: &str,
    seeded: usize,
) -> Result<Deployment, String> {
    let (database, url) = Database::create(args, database_kind).await?;
    let secret = SecretBytes::generate(32);
    let keys = Keys::from_secret(secret.clone(), None, Vec::new());
    let params = Argon2Params::profile(profile).ok_or("unknown profile")?;
    let hash = password::hash_password_blocking(PASSWORD, &params).map_err(|e| e.to_string())?;
    let began = Instant::now();
    let cache = match (&database, &args.seed_cache) {
        (Database::Sqlite { dir }, Some(cache)) => {
            Some(SeedCache::new(cache, dir, seeded, profile))
        }
        _ => None,
    };
    let cached = match &cache {
        Some(cache) => cache.load()?,
        None => None,
    };
    let (secret, users) = match cached {
        Some(cached) => cached,
        None => {
            let store = mfagate_store::open(&url).await.map_err(|e| e.to_string())?;
            let users = seed::seed(store, &keys, seeded, &hash, now()).await?;
            (secret, users)
        }
    };
    // A database grown over months has its WAL copied back long ago: start from that, not from
    // a WAL of everything just seeded (which the server would spend the first scenarios
    // copying back).
    if url.starts_with("sqlite:") {
        // The seeding store's connections close as its threads end, just after `seed` returns:
        // until then a TRUNCATE checkpoint may be refused (busy) and leave part of the WAL.
        let connection = sqlite_connection(&url)?;
        let mut complete = false;
        for _ in 0..100 {
            let busy: i64 = connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                .map_err(|e| format!("checkpoint after seeding: {e}"))?;
            if busy == 0 {
                complete = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Only a file with all of its WAL copied in stands alone in the cache.
        match &cache {
            Some(cache) if complete => cache.save(&secret, &users)?,
            Some(_) => eprintln!("  the seeded WAL could not be copied back; not cached"),
            None => {}
        }
    } else {
        let mut connection = sqlx::PgConnection::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        // And its planner statistics are current (autovacuum would have analysed a database
        // grown over months; a bulk load just done may not be yet, and plans made for "an
        // empty table" are not what a deployment runs).
        connection
            .execute("ANALYZE")
            .await
            .map_err(|e| format!("analyse after seeding: {e}"))?;
        connection
            .execute("CHECKPOINT")
            .await
            .map_err(|e| format!("checkpoint after seeding: {e}"))?;
    }
    // And the gigabytes just written reach the disk before anything is measured: otherwise the
    // kernel's writeback of them holds up every fsync of the first scenarios.
    let synced = Instant::now();
    let _ = std::process::Command::new("sync").status();
    eprintln!(
        "  flushed the seeded data to disk in {:.1} s",
        synced.elapsed().as_secs_f64()
    );
    eprintln!(
        "  seeded {seeded} accounts (TOTP, recovery codes, sessions, audit, keys) in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let port = free_port();
    let env: Vec<(String, String)> = [
        ("MFAGATE_LISTEN", format!("127.0.0.1:{port}")),
        ("MFAGATE_DATABASE_URL", url.clone()),
        ("MFAGATE_SECRET_KEY", secret.to_hex()),
        ("MFAGATE_ARGON2_PROFILE", profile.to_string()),
        ("MFAGATE_IP_THROTTLE", args.ip_throttle.clone()),
        ("MFAGATE_LOGIN_THROTTLE", "off".to_string()),
        // Every client of the load generator is 127.0.0.1: the fair hash queue's per-IP share
        // would shed their concurrent logins as one flooding client's.
        ("MFAGATE_HASH_QUEUE_PER_IP", "100000".to_string()),
        (
            "RUST_LOG",
            std::env::var("MFAGATE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_string()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let server = ServerProcess::spawn(binary, &["serve"], &env, port).await?;
    Ok(Deployment {
        url: url.clone(),
        server,
        database,
        users: Arc::new(users),
        env,
    })
}

/// A seeded SQLite database kept for later runs of the same size and hashing profile: the
/// file, and beside it the key it was sealed with and the accounts' plain secrets.
struct SeedCache {
    database: PathBuf,
    accounts: PathBuf,
    /// The new deployment's database file.
    target: PathBuf,
}

#[derive(serde::Deserialize)]
struct CachedAccounts {
    secret: String,
    users: Vec<SeededUser>,
}

impl SeedCache {
    fn new(cache: &std::path::Path, dir: &std::path::Path, seeded: usize, profile: &str) -> Self {
        let name = format!("sqlite-{seeded}-{profile}");
        SeedCache {
            database: cache.join(format!("{name}.db")),
            accounts: cache.join(format!("{name}.json")),
            target: dir.join("bench.db"),
        }
    }

    /// Copies the cached file into place and answers its key and accounts; `None` when
    /// nothing of this size is cached yet.
    fn load(&self) -> Result<Option<(SecretBytes, Vec<SeededUser>)>, String> {
        if !self.database.exists() || !self.accounts.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.accounts).map_err(|e| e.to_string())?;
        let cached: CachedAccounts = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let secret = SecretBytes::parse(&cached.secret)?;
        std::fs::copy(&self.database, &self.target)
            .map_err(|e| format!("copying {}: {e}", self.database.display()))?;
        eprintln!(
            "  copied the seeded database from {}",
            self.database.display()
        );
        Ok(Some((secret, cached.users)))
    }

    /// Keeps a copy of the freshly seeded (and checkpointed) file.
    fn save(&self, secret: &SecretBytes, users: &[SeededUser]) -> Result<(), String> {
        if self.database.exists() {
            return Ok(());
        }
        if let Some(parent) = self.database.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let partial = self.database.with_extension("partial");
        std::fs::copy(&self.target, &partial).map_err(|e| e.to_string())?;
        let accounts = serde_json::to_string(&serde_json::json!({
            "secret": secret.to_hex(),
            "users": users,
        }))
        .map_err(|e| e.to_string())?;
        std::fs::write(&self.accounts, accounts).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &self.database).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Waits until the server's clean-up has deleted every expired session and used recovery code
/// (counted here with a plain scan: this is the benchmark, not a request path).
async fn wait_for_cleanup(url: &str) -> Result<(), String> {
    const LEFT: &str = "SELECT (SELECT COUNT(*) FROM refresh_tokens WHERE expires_at <= $1)
                             + (SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NOT NULL)";
    for _ in 0..3600 {
        let left: i64 = if url.starts_with("sqlite:") {
            sqlite_connection(url)?
                .query_row(&LEFT.replace("$1", "?1"), [now()], |row| row.get(0))
                .map_err(|e| e.to_string())?
        } else {
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query_scalar(LEFT)
                .bind(now())
                .fetch_one(&mut c)
                .await
                .map_err(|e| e.to_string())?
        };
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("the clean-up did not finish within 30 minutes".into())
}

/// On PostgreSQL, reclaims the dead rows the clean-up left, as autovacuum does in a deployment
/// soon after a mass delete. Without it (autovacuum is off on some machines, this one's CI
/// PostgreSQL among them) the steady-state scenarios run over tables and indexes holding
/// millions of dead entries, which no deployment with autovacuum on would. SQLite reuses the
/// freed pages by itself.
async fn vacuum_after_cleanup(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:") {
        return Ok(());
    }
    let began = Instant::now();
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    c.execute("VACUUM (ANALYZE)")
        .await
        .map_err(|e| format!("vacuum after the clean-up: {e}"))?;
    // And what the clean-up and the vacuum wrote is checkpointed before the scenarios, as after
    // seeding (the caller's `sync` then writes it out): at a million accounts that is gigabytes,
    // and PostgreSQL's checkpoints of it would otherwise run through the scenarios measured
    // next, as they would not in a deployment that deleted its backlog long ago.
    c.execute("CHECKPOINT")
        .await
        .map_err(|e| format!("checkpoint after the clean-up: {e}"))?;
    eprintln!(
        "  vacuumed and checkpointed after the clean-up in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1) * 2)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

async fn send(request: reqwest::RequestBuilder, token: Option<&str>) -> Result<Value, String> {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

async fn post(
    client: &reqwest::Client,
    url: String,
    body: Value,
    token: Option<&str>,
) -> Result<Value, String> {
    send(client.post(url).json(&body), token).await
}

async fn get(client: &reqwest::Client, url: String, token: Option<&str>) -> Result<Value, String> {
    send(client.get(url), token).await
}

fn now() -> i64 {
    use mfagate_core::clock::Clock;
    mfagate_core::clock::SystemClock.now()
}

/// A login then a TOTP code, for the next seeded user (each used once).
async fn mfa_flow(
    client: &reqwest::Client,
    base: &str,
    users: &[SeededUser],
    next: &AtomicUsize,
    limit: usize,
) -> Result<bool, String> {
    let index = next.fetch_add(1, Ordering::Relaxed);
    let Some(user) = users.get(index).filter(|_| index < limit) else {
        return Ok(false);
    };
    mfa_token(client, base, user).await.map(|_| true)
}

/// S2 and S2p: login then TOTP for seeded users, each user once.
async fn mfa_login_levels(
    name: &str,
    plan: &Plan,
    base: &str,
    users: Arc<Vec<SeededUser>>,
    next: Arc<AtomicUsize>,
    limit: usize,
) -> Vec<LevelResult> {
    levels(name, plan, |c| {
        let (client, base, users, next) =
            (client(c), base.to_string(), users.clone(), next.clone());
        Arc::new(move |_: usize, _: u64| {
            let (client, base, users, next) =
                (client.clone(), base.clone(), users.clone(), next.clone());
            async move { mfa_flow(&client, &base, &users, &next, limit).await }
        })
    })
    .await
}

struct Plan {
    levels: Vec<usize>,
    duration: Duration,
}

/// Runs one scenario at each concurrency of the plan; `op(concurrency)` makes its operation.
async fn levels<F, Fut>(name: &str, plan: &Plan, op: impl Fn(usize) -> Arc<F>) -> Vec<LevelResult>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<bool, String>> + Send,
{
    let mut results = Vec::new();
    for &concurrency in &plan.levels {
        let operation = op(concurrency);
        let result = load::run(concurrency, plan.duration, operation).await;
        eprintln!(
            "  {name} c={concurrency}: {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {}",
            result.per_second, result.p50_ms, result.p99_ms, result.errors
        );
        results.push(result);
    }
    results
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "os": std::env::consts::OS,
    })
}

fn best(results: &[LevelResult]) -> Option<&LevelResult> {
    results
        .iter()
        .max_by(|a, b| a.per_second.total_cmp(&b.per_second))
}

/// One user's chain of recovery-code regenerations (S5): the codes of the latest set.
struct CodeChain {
    access: String,
    codes: Vec<String>,
}

/// Logs a seeded user in with TOTP; the access token.
async fn mfa_token(
    client: &reqwest::Client,
    base: &str,
    user: &SeededUser,
) -> Result<String, String> {
    let login = post(
        client,
        format!("{base}/auth/login"),
        json!({"username": user.username, "password": PASSWORD}),
        None,
    )
    .await?;
    let code = totp::code_at(&user.secret, now(), &TotpParams::default());
    let tokens = post(
        client,
        format!("{base}/auth/mfa/verify"),
        json!({"ephemeral_token": login["ephemeral_token"], "code": code}),
        None,
    )
    .await?;
    Ok(tokens["access"]
        .as_str()
        .ok_or("no access token")?
        .to_string())
}

/// Registers a user and enrols TOTP (S3, and a quarter of the mixed load).
async fn enrolment(client: &reqwest::Client, base: &str, name: &str) -> Result<bool, String> {
    let registered = post(
        client,
        format!("{base}/auth/register"),
        json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
        None,
    )
    .await?;
    let access = registered["access"].as_str().ok_or("no token")?.to_string();
    let begun = get(
        client,
        format!("{base}/auth/mfa/totp/activate"),
        Some(&access),
    )
    .await?;
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun["secret"].as_str().unwrap_or_default().as_bytes())
        .map_err(|e| e.to_string())?;
    let code = totp::code_at(&secret, now(), &TotpParams::default());
    post(
        client,
        format!("{base}/auth/mfa/totp/activate"),
        json!({"activation_token": begun["activation_token"], "code": code}),
        Some(&access),
    )
    .await?;
    Ok(true)
}

/// Refresh chains, one per worker (S4, and a quarter of the mixed load).
async fn refresh_chains(
    client: &reqwest::Client,
    base: &str,
    tag: &str,
    count: usize,
) -> Result<Arc<Vec<Mutex<String>>>, String> {
    let mut chains = Vec::new();
    for worker in 0..count {
        let name = format!("r{tag}w{worker}");
        let registered = post(
            client,
            format!("{base}/auth/register"),
            json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            None,
        )
        .await?;
        chains.push(Mutex::new(
            registered["refresh"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    Ok(Arc::new(chains))
}

async fn refresh_once(
    client: &reqwest::Client,
    url: &str,
    chain: &Mutex<String>,
) -> Result<bool, String> {
    let current = chain.lock().map_err(|e| e.to_string())?.clone();
    let pair = post(client, url.to_string(), json!({"refresh": current}), None).await?;
    *chain.lock().map_err(|e| e.to_string())? =
        pair["refresh"].as_str().unwrap_or_default().to_string();
    Ok(true)
}

/// The whole suite on one database kind and size: the report as JSON and as a Markdown table.
async fn suite(
    args: &Args,
    kind: &str,
    seeded: usize,
    plan: &Plan,
) -> Result<(Value, String), String> {
    let wants = |scenario: &str| {
        args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(scenario))
    };
    let binary = server::mfagate_binary()?;
    let machine = machine();
    let cores = machine["cores"].as_u64().unwrap_or(1) as f64;
    eprintln!(
        "mfagate benchmark: {kind}, {seeded} accounts, on {}, {} cores",
        machine["cpu"], cores
    );

    // The cost of one production hash, measured here: the limit S2p is judged against.
    let owasp = Argon2Params::default();
    let hash = password::hash_password_blocking(PASSWORD, &owasp).map_err(|e| e.to_string())?;
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let began = Instant::now();
            password::verify_password_blocking(PASSWORD, &hash);
            began.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let hash_seconds = times[times.len() / 2];
    let argon2_limit = cores / hash_seconds;
    // What the hardware really gives with every core hashing at once (shared caches and memory
    // bandwidth make it less than `cores` times one): the bare-hash rate S2p is also shown beside.
    let parallel_began = Instant::now();
    let per_thread = 30;
    std::thread::scope(|scope| {
        for _ in 0..cores as usize {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    password::verify_password_blocking(PASSWORD, &hash);
                }
            });
        }
    });
    let parallel_hash_rate = cores * per_thread as f64 / parallel_began.elapsed().as_secs_f64();

    // S0: the ceiling.
    let port = free_port();
    let self_exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bare =
        ServerProcess::spawn(&self_exe, &["--bare-server", &port.to_string()], &[], port).await?;
    let base = bare.base.clone();
    let s0 = levels("S0 ceiling", plan, |c| {
        let (client, url) = (client(c), format!("{base}/ceiling"));
        Arc::new(move |_: usize, _: u64| {
            let (client, url) = (client.clone(), url.clone());
            async move { get(&client, url, None).await.map(|_| true) }
        })
    })
    .await;
    drop(bare);

    // The server with the low-cost hashing profile on the seeded database: S1 to S6, mixed.
    let deployment = deploy(args, kind, &binary, "low-cost", seeded).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = deployment.server.rss_mib();
    let base = deployment.server.base.clone();
    let users = deployment.users.clone();
    // Seeded users are taken in order, each once, by S7, S2 and the mixed load; S5 uses the last.
    let usable = users.len().saturating_sub(seed::WITH_CODES);
    let logins = users.clone();
    let next_user = Arc::new(AtomicUsize::new(0));

    // S7: logins while the server's first clean-up works off the seeded backlog of expired
    // and spent rows (a third of the sessions, a fifth of the recovery codes, the expired
    // challenges and keys). Then wait until it is done, so the rest measure a steady state.
    let s7 = if !wants("S7") {
        Vec::new()
    } else {
        mfa_login_levels(
            "S7 MFA login during the clean-up",
            plan,
            &base,
            logins.clone(),
            next_user.clone(),
            usable,
        )
        .await
    };
    let waited = Instant::now();
    if !args.skip_cleanup_wait {
        wait_for_cleanup(&deployment.url).await?;
        vacuum_after_cleanup(&deployment.url).await?;
    }
    // The clean-up rewrote pages all over the database: let them reach the disk before the
    // steady-state scenarios, or their fsyncs wait behind the kernel's writeback.
    let _ = std::process::Command::new("sync").status();
    eprintln!(
        "  the clean-up of the seeded backlog finished {:.1} s after S7",
        waited.elapsed().as_secs_f64()
    );

    let setup = client(1);
    let registered = post(
        &setup,
        format!("{base}/auth/register"),
        json!({"username": "s1user", "email": "s1@example.com", "password": PASSWORD}),
        None,
    )
    .await?;
    let token = registered["access"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let s1 = if !wants("S1") {
        Vec::new()
    } else {
        levels("S1 protected", plan, |c| {
            let (client, url, token) = (client(c), format!("{base}/auth/user"), token.clone());
            Arc::new(move |_: usize, _: u64| {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                async move { get(&client, url, Some(&token)).await.map(|_| true) }
            })
        })
        .await
    };

    let s2 = if !wants("S2") {
        Vec::new()
    } else {
        mfa_login_levels(
            "S2 MFA login",
            plan,
            &base,
            logins.clone(),
            next_user.clone(),
            usable,
        )
        .await
    };
    let rss_peak = deployment.server.peak_rss_mib();

    let level_tag = AtomicUsize::new(0);
    let s3 = if !wants("S3") {
        Vec::new()
    } else {
        levels("S3 enrolment", plan, |c| {
            let tag = level_tag.fetch_add(1, Ordering::Relaxed);
            let (client, base) = (client(c), base.clone());
            Arc::new(move |worker: usize, iteration: u64| {
                let (client, base) = (client.clone(), base.clone());
                async move { enrolment(&client, &base, &format!("e{tag}w{worker}i{iteration}")).await }
            })
        })
        .await
    };

    let mut s4 = Vec::new();
    for &concurrency in plan.levels.iter().filter(|_| wants("S4")) {
        let client = client(concurrency);
        let chains =
            refresh_chains(&client, &base, &format!("s4c{concurrency}"), concurrency).await?;
        let url = format!("{base}/auth/token/refresh");
        let op = Arc::new(move |worker: usize, _: u64| {
            let (client, url, chains) = (client.clone(), url.clone(), chains.clone());
            async move { refresh_once(&client, &url, &chains[worker]).await }
        });
        let result = load::run(concurrency, plan.duration, op).await;
        eprintln!(
            "  S4 refresh c={concurrency}: {:.0}/s p99 {:.2} ms errors {}",
            result.per_second, result.p99_ms, result.errors
        );
        s4.push(result);
    }

    // S5: recovery-code regeneration, each worker on a seeded user of its own, each call
    // spending one code of the set the call before gave.
    let mut s5 = Vec::new();
    for &concurrency in plan.levels.iter().filter(|_| wants("S5")) {
        let client = client(concurrency);
        let mut chains = Vec::new();
        for (worker, user) in users[usable..].iter().take(concurrency).enumerate() {
            let access = mfa_token(&client, &base, user)
                .await
                .map_err(|e| format!("S5 worker {worker}: {e}"))?;
            chains.push(tokio::sync::Mutex::new(CodeChain {
                access,
                codes: user.codes.clone(),
            }));
        }
        let chains = Arc::new(chains);
        let url = format!("{base}/auth/mfa/recovery-codes/regenerate");
        let op = Arc::new(move |worker: usize, _: u64| {
            let (client, url, chains) = (client.clone(), url.clone(), chains.clone());
            async move {
                let Some(chain) = chains.get(worker) else {
                    return Ok(false);
                };
                let mut chain = chain.lock().await;
                let code = chain.codes.pop().ok_or("no code left")?;
                let answer = post(&client, url, json!({"code": code}), Some(&chain.access)).await?;
                chain.codes = answer["recovery_codes"]
                    .as_array()
                    .ok_or("no codes in the answer")?
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                Ok(true)
            }
        });
        let result = load::run(concurrency, plan.duration, op).await;
        eprintln!(
            "  S5 regenerate c={concurrency}: {:.0}/s p99 {:.2} ms errors {}",
            result.per_second, result.p99_ms, result.errors
        );
        s5.push(result);
    }

    // S6: an administrator pages through the user list and reads users' audit trails.
    // S8: logins with a passkey alone.
    let s8 = if wants("S8") {
        passkeys::passkey_levels(plan, &base).await?
    } else {
        Vec::new()
    };

    let mut s6 = Vec::new();
    if wants("S6") {
        let admin_name = "benchadmin";
        post(
            &setup,
            format!("{base}/auth/register"),
            json!({"username": admin_name, "email": "admin@example.com", "password": PASSWORD}),
            None,
        )
        .await?;
        let status = std::process::Command::new(&binary)
            .args(["user", "set-admin", admin_name])
            .envs(deployment.env.iter().cloned())
            .output()
            .map_err(|e| e.to_string())?;
        if !status.status.success() {
            return Err(format!(
                "set-admin: {}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        let login = post(
            &setup,
            format!("{base}/auth/login"),
            json!({"username": admin_name, "password": PASSWORD}),
            None,
        )
        .await?;
        let admin = login["access"].as_str().unwrap_or_default().to_string();
        let ids: Arc<Vec<String>> = Arc::new(users.iter().map(|u| u.id.clone()).collect());
        for &concurrency in &plan.levels {
            let client = client(concurrency);
            let cursors: Arc<Vec<Mutex<Option<String>>>> =
                Arc::new((0..concurrency).map(|_| Mutex::new(None)).collect());
            let (base, admin, ids) = (base.clone(), admin.clone(), ids.clone());
            let op = Arc::new(move |worker: usize, iteration: u64| {
                let (client, base, admin, ids, cursors) = (
                    client.clone(),
                    base.clone(),
                    admin.clone(),
                    ids.clone(),
                    cursors.clone(),
                );
                async move {
                    if iteration.is_multiple_of(2) {
                        let after = cursors[worker].lock().map_err(|e| e.to_string())?.clone();
                        let url = match after {
                            Some(after) => {
                                format!("{base}/auth/admin/users?limit=100&after={after}")
                            }
                            None => format!("{base}/auth/admin/users?limit=100"),
                        };
                        let page = get(&client, url, Some(&admin)).await?;
                        *cursors[worker].lock().map_err(|e| e.to_string())? =
                            page["next"].as_str().map(str::to_string);
                    } else {
                        let id =
                            &ids[(worker * 7919 + iteration as usize * 104_729) % ids.len().max(1)];
                        get(
                            &client,
                            format!("{base}/auth/admin/audit?user_id={id}&limit=50"),
                            Some(&admin),
                        )
                        .await?;
                    }
                    Ok(true)
                }
            });
            let result = load::run(concurrency, plan.duration, op).await;
            eprintln!(
                "  S6 admin list + audit c={concurrency}: {:.0}/s p99 {:.2} ms errors {}",
                result.per_second, result.p99_ms, result.errors
            );
            s6.push(result);
        }
    }

    // Mixed: logins with TOTP, refreshes, enrolments and protected calls at once, so a slow
    // write is felt by every call queued behind it.
    let mut mixed = Vec::new();
    for &concurrency in plan.levels.iter().filter(|_| wants("mixed")) {
        let client = client(concurrency);
        let chains =
            refresh_chains(&client, &base, &format!("mx{concurrency}"), concurrency).await?;
        let (base, token, logins, next_user) = (
            base.clone(),
            token.clone(),
            logins.clone(),
            next_user.clone(),
        );
        let op = Arc::new(move |worker: usize, iteration: u64| {
            let (client, base, token, logins, next_user, chains) = (
                client.clone(),
                base.clone(),
                token.clone(),
                logins.clone(),
                next_user.clone(),
                chains.clone(),
            );
            async move {
                match worker % 4 {
                    0 => mfa_flow(&client, &base, &logins, &next_user, usable).await,
                    1 => {
                        refresh_once(
                            &client,
                            &format!("{base}/auth/token/refresh"),
                            &chains[worker],
                        )
                        .await
                    }
                    2 => {
                        enrolment(
                            &client,
                            &base,
                            &format!("mx{concurrency}w{worker}i{iteration}"),
                        )
                        .await
                    }
                    _ => get(&client, format!("{base}/auth/user"), Some(&token))
                        .await
                        .map(|_| true),
                }
            }
        });
        let result = load::run(concurrency, plan.duration, op).await;
        eprintln!(
            "  mixed c={concurrency}: {:.0} calls/s p50 {:.2} ms p99 {:.2} ms errors {}",
            result.per_second, result.p50_ms, result.p99_ms, result.errors
        );
        mixed.push(result);
    }
    eprintln!(
        "  seeded users taken by logins: {} of {usable}",
        next_user.load(Ordering::Relaxed).min(usable)
    );
    let Deployment {
        server, database, ..
    } = deployment;
    drop(server);
    database.remove().await;

    // S2p: the same flow with production argon2 parameters, on a small database of its own
    // (the hash, not the database, bounds it).
    let mut s2p = Vec::new();
    if wants("S2p") {
        let production = deploy(
            args,
            kind,
            &binary,
            "owasp",
            if args.quick { 1_000 } else { 4_000 },
        )
        .await?;
        let base = production.server.base.clone();
        let users = production.users.clone();
        let limit = users.len();
        s2p = mfa_login_levels(
            "S2p MFA login, argon2 OWASP",
            plan,
            &base,
            users,
            Arc::new(AtomicUsize::new(0)),
            limit,
        )
        .await;
        let Deployment {
            server, database, ..
        } = production;
        drop(server);
        database.remove().await;
    }

    // Report.
    let ceiling_at = |c: usize| {
        s0.iter()
            .find(|l| l.concurrency == c)
            .map_or(0.0, |l| l.per_second)
    };
    let mut table = String::from("| scenario | concurrency | per second | vs ceiling | p50 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|\n");
    for (name, results) in [
        ("S0 ceiling (bare axum)", &s0),
        ("S1 protected GET /auth/user", &s1),
        ("S2 MFA login (flows)", &s2),
        ("S7 MFA login during the clean-up (flows)", &s7),
        ("S2p MFA login, argon2 OWASP (flows)", &s2p),
        ("S3 enrolment (flows)", &s3),
        ("S4 refresh", &s4),
        ("S5 recovery-code regeneration", &s5),
        ("S6 admin user list + audit", &s6),
        ("S8 passkey login, no password (flows)", &s8),
        (
            "mixed: logins, refreshes, enrolments, protected calls",
            &mixed,
        ),
    ] {
        for l in results.iter() {
            table.push_str(&format!(
                "| {name} | {} | {:.0} | {:.0} % | {:.2} | {:.2} | {:.2} | {} |\n",
                l.concurrency,
                l.per_second,
                100.0 * l.per_second / ceiling_at(l.concurrency).max(1.0),
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.errors
            ));
        }
    }
    let s2p_best = best(&s2p).map_or(0.0, |b| b.per_second);
    table.push_str(&format!(
        "\n{seeded} seeded accounts. argon2 limit (cores / one OWASP hash = {:.0} / {:.1} ms): {:.0} logins/s; S2p reaches {:.0} % of it ({:.0} % of the {:.0} hashes/s that bare argon2id manages on all cores at once).\nRSS: idle {:.1} MiB, peak under S2 {:.1} MiB. Fast scenarios use the `low-cost` argon2 profile (m=8 KiB, t=1, p=1).\n",
        cores,
        hash_seconds * 1000.0,
        argon2_limit,
        100.0 * s2p_best / argon2_limit,
        100.0 * s2p_best / parallel_hash_rate,
        parallel_hash_rate,
        rss_idle,
        rss_peak
    ));
    let scenario = |results: &[LevelResult], unit: &str| match best(results) {
        Some(b) => json!({ unit: b.per_second, "p99_ms": b.p99_ms, "levels": results }),
        None => json!({ "skipped": true }),
    };
    let mut s2p_json = scenario(&s2p, "flows_per_s");
    s2p_json["limit_flows_per_s"] = json!(argon2_limit);
    s2p_json["parallel_hash_limit_flows_per_s"] = json!(parallel_hash_rate);
    let report = json!({
        "machine": machine,
        "database": kind,
        "users": seeded,
        "quick": args.quick || args.scale,
        "password_profile_fast_scenarios": "low-cost (argon2id m=8 KiB, t=1, p=1)",
        "argon2_owasp_hash_ms": hash_seconds * 1000.0,
        "scenarios": {
            "S0_ceiling": scenario(&s0, "rps"),
            "S1_protected": scenario(&s1, "rps"),
            "S2_mfa_login": scenario(&s2, "flows_per_s"),
            "S7_mfa_login_during_cleanup": scenario(&s7, "flows_per_s"),
            "S2p_mfa_login_argon2": s2p_json,
            "S3_enroll": scenario(&s3, "flows_per_s"),
            "S4_refresh": scenario(&s4, "rps"),
            "S5_regenerate": scenario(&s5, "rps"),
            "S6_admin": scenario(&s6, "rps"),
            "S8_passkey_login": scenario(&s8, "flows_per_s"),
            "mixed": scenario(&mixed, "rps"),
        },
        "rss_mib": { "idle": rss_idle, "peak": rss_peak },
    });
    Ok((report, table))
}

fn write_json(path: &std::path::Path, value: &Value) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n",
    )
    .map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

/// Large against small, per scenario: throughput kept and p99 grown.
fn ratios(small: &Value, large: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(scenarios) = small["scenarios"].as_object() {
        for (name, s) in scenarios {
            let l = &large["scenarios"][name];
            let rate = |v: &Value| ["rps", "flows_per_s"].iter().find_map(|k| v[*k].as_f64());
            if let (Some(a), Some(b)) = (rate(s), rate(l)) {
                out.insert(
                    name.clone(),
                    json!({
                        "throughput_kept": b / a.max(1e-9),
                        "p99_growth": l["p99_ms"].as_f64().unwrap_or(0.0) / s["p99_ms"].as_f64().unwrap_or(1.0).max(1e-9),
                    }),
                );
            }
        }
    }
    Value::Object(out)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if let Some(port) = args.bare_server {
        server::run_bare_server(port).await;
        return Ok(());
    }
    if let Some(minutes) = args.soak {
        let kind = args.database.clone();
        let (database, url) = Database::create(&args, &kind).await?;
        let binary = server::mfagate_binary()?;
        let report = soak::soak(&binary, database, url, minutes, &kind, args.calm).await?;
        let calm = if args.calm { "-calm" } else { "" };
        let output = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("bench/results/soak-{kind}{calm}.json")));
        return write_json(&output, &report);
    }
    let quick = Plan {
        levels: vec![32],
        duration: Duration::from_secs(args.seconds.unwrap_or(3)),
    };
    if args.scale {
        for kind in args.scale_databases.clone() {
            let kind = kind.as_str();
            let (small, small_table) = suite(&args, kind, 30_000, &quick).await?;
            let (large, large_table) = suite(&args, kind, args.large_users, &quick).await?;
            println!("## {kind}, 30,000 accounts\n\n{small_table}\n## {kind}, {} accounts\n\n{large_table}", args.large_users);
            let ratios = ratios(&small, &large);
            eprintln!(
                "{kind}: large vs small {}",
                serde_json::to_string_pretty(&ratios).unwrap_or_default()
            );
            write_json(
                &PathBuf::from(format!("bench/results/scale-{kind}.json")),
                &json!({ "small": small, "large": large, "ratios": ratios }),
            )?;
        }
        return Ok(());
    }
    let plan = if args.quick {
        quick
    } else {
        Plan {
            levels: vec![1, 16, 64],
            duration: Duration::from_secs(args.seconds.unwrap_or(8)),
        }
    };
    let users = args
        .users
        .unwrap_or(if args.quick { 30_000 } else { 120_000 });
    let (report, table) = suite(&args, &args.database.clone(), users, &plan).await?;
    println!("{table}");
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("bench/results/latest.json"));
    write_json(&output, &report)
}
