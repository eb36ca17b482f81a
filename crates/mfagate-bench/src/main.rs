//! `cargo run --release -p mfagate-bench -- [--quick] [--database sqlite|postgres] [--users N]`
//! `cargo run --release -p mfagate-bench -- --scale`
//! `cargo run --release -p mfagate-bench -- --soak MINUTES [--database postgres] [--calm]` (see `soak.rs`)
//!
//! Starts the release server on a database seeded as ordinary use grows one (through the
//! store's import intent: factors, recovery codes, sessions, audit history, keys, expired rows),
//! drives load over HTTP, and reports every figure beside the HTTP ceiling of this machine (a
//! bare axum server measured in the same run with the same client). Writes a Markdown table to
//! stdout and JSON to `bench/results/latest.json`; `--scale` runs the quick suite at 30,000 and
//! at 1,000,000 users on SQLite and on PostgreSQL, the two sizes side by side and measured in
//! turn (see `scale`), and writes `bench/results/scale-*.json`.

mod counters;
mod load;
mod passkeys;
mod scenarios;
mod seed;
mod server;
mod soak;

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mfagate_core::password::{self, Argon2Params};
use mfagate_core::secret::{new_id, SecretBytes};
use mfagate_core::Keys;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use scenarios::{Measured, Target, STEADY};
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

impl Deployment {
    /// Stops the server, then removes its database.
    async fn remove(self) {
        let Deployment {
            server, database, ..
        } = self;
        drop(server);
        database.remove().await;
    }
}

/// A database seeded for one deployment whose server has not started yet (so that its first
/// clean-up starts with the scenario that measures it, S7, however long other seeding takes).
struct Seeded {
    database: Database,
    url: String,
    secret: SecretBytes,
    users: Vec<SeededUser>,
    profile: &'static str,
}

async fn seed_database(
    args: &Args,
    database_kind: &str,
    profile: &'static str,
    seeded: usize,
) -> Result<Seeded, String> {
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
    Ok(Seeded {
        database,
        url,
        secret,
        users,
        profile,
    })
}

/// Starts the server on a seeded database.
async fn start(
    args: &Args,
    binary: &std::path::Path,
    seeded: Seeded,
) -> Result<Deployment, String> {
    let Seeded {
        database,
        url,
        secret,
        users,
        profile,
    } = seeded;
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

/// Waits until `path`'s data is on the disk.
fn sync_file(path: &std::path::Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| format!("syncing {}: {e}", path.display()))
}

impl SeedCache {
    fn new(cache: &std::path::Path, dir: &std::path::Path, seeded: usize, profile: &str) -> Self {
        // Named for the seed's version too, so a file seeded before a change to the seed is
        // never taken for one seeded after it.
        let name = format!("sqlite-{seeded}-{profile}-seed{}", seed::VERSION);
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
        // On the disk before the server starts, as a database grown over months is: otherwise
        // the kernel writes the copy's gigabytes back during the first scenario, S7, whose
        // commits then wait behind it.
        sync_file(&self.target)?;
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
        sync_file(&partial)?;
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

/// Registers `name` (e-mail `name@example.com`) with the bench's password: the answer, with
/// its `access` and `refresh` tokens.
async fn register(client: &reqwest::Client, base: &str, name: &str) -> Result<Value, String> {
    post(
        client,
        format!("{base}/auth/register"),
        json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
        None,
    )
    .await
}

fn now() -> i64 {
    use mfagate_core::clock::Clock;
    mfagate_core::clock::SystemClock.now()
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
        results.push(level(name, concurrency, plan, op(concurrency)).await);
    }
    results
}

/// Runs one scenario at one concurrency and logs what it measured.
async fn level<F, Fut>(name: &str, concurrency: usize, plan: &Plan, op: Arc<F>) -> LevelResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<bool, String>> + Send,
{
    let result = load::run(concurrency, plan.duration, op).await;
    eprintln!(
        "  {name} c={concurrency}: {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {}",
        result.per_second, result.p50_ms, result.p99_ms, result.errors
    );
    result
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

/// The cost of one production (OWASP) hash on this machine, measured here: the limit S2p is
/// judged against.
struct HashCost {
    /// One hash on one core.
    seconds: f64,
    /// Cores / one hash.
    limit: f64,
    /// What the hardware really gives with every core hashing at once (shared caches and
    /// memory bandwidth make it less than `cores` times one).
    parallel_rate: f64,
}

fn hash_cost(cores: f64) -> Result<HashCost, String> {
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
    let seconds = times[times.len() / 2];
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
    Ok(HashCost {
        seconds,
        limit: cores / seconds,
        parallel_rate: cores * per_thread as f64 / parallel_began.elapsed().as_secs_f64(),
    })
}

fn wants(args: &Args, scenario: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(scenario))
}

/// S2p: the MFA login with production argon2 parameters, on a small database of its own (the
/// hash, not the database, bounds it).
async fn production_logins(
    args: &Args,
    kind: &str,
    binary: &std::path::Path,
    plan: &Plan,
) -> Result<Vec<LevelResult>, String> {
    let seeded = seed_database(args, kind, "owasp", if args.quick { 1_000 } else { 4_000 }).await?;
    let production = start(args, binary, seeded).await?;
    let users = production.users.clone();
    let limit = users.len();
    let s2p = scenarios::mfa_login_levels(
        "S2p MFA login, argon2 OWASP",
        plan,
        &production.server.base,
        users,
        Arc::new(AtomicUsize::new(0)),
        limit,
    )
    .await;
    production.remove().await;
    Ok(s2p)
}

/// The whole suite on one database kind and size: the report as JSON and as a Markdown table.
async fn suite(
    args: &Args,
    kind: &str,
    seeded: usize,
    plan: &Plan,
) -> Result<(Value, String), String> {
    let binary = server::mfagate_binary()?;
    let machine = machine();
    let cores = machine["cores"].as_u64().unwrap_or(1) as f64;
    eprintln!(
        "mfagate benchmark: {kind}, {seeded} accounts, on {}, {} cores",
        machine["cpu"], cores
    );
    let hash = hash_cost(cores)?;
    let s0 = scenarios::ceiling(plan).await?;
    // The server with the low-cost hashing profile on the seeded database: S1 to S8, mixed.
    let deployment = start(
        args,
        &binary,
        seed_database(args, kind, "low-cost", seeded).await?,
    )
    .await?;
    let mut target = Target::new(deployment, seeded).await;
    target.measured.results.insert("S0", s0);
    target
        .login_during_cleanup(plan, wants(args, "S7"), !args.skip_cleanup_wait)
        .await?;
    for scenario in STEADY.into_iter().filter(|s| wants(args, s)) {
        target.run(scenario, plan, &binary).await?;
    }
    let mut measured = target.remove().await;
    if wants(args, "S2p") {
        let s2p = production_logins(args, kind, &binary, plan).await?;
        measured.results.insert("S2p", s2p);
    }
    Ok(report(args, kind, &machine, &hash, &measured))
}

/// `--scale`: the quick suite at 30,000 and at `large` accounts of one database kind, the two
/// sizes deployed side by side and measured in turn, scenario by scenario (the ceiling S0
/// included), the order of each pair swapped from one scenario to the next. On a shared machine
/// whose speed drifts by tens of percent over half an hour, each ratio then compares
/// measurements taken a minute apart, and S0's pair shows what drift is left.
async fn scale(
    args: &Args,
    kind: &str,
    large: usize,
    plan: &Plan,
) -> Result<((Value, String), (Value, String)), String> {
    let binary = server::mfagate_binary()?;
    let machine = machine();
    let cores = machine["cores"].as_u64().unwrap_or(1) as f64;
    eprintln!(
        "mfagate scale benchmark: {kind}, 30000 against {large} accounts, on {}, {} cores",
        machine["cpu"], cores
    );
    let hash = hash_cost(cores)?;
    // Both databases seeded before either server starts, so that each first clean-up is the
    // one its S7 measures.
    let small_seed = seed_database(args, kind, "low-cost", 30_000).await?;
    let large_seed = seed_database(args, kind, "low-cost", large).await?;
    let mut targets = Vec::new();
    for (seeded, count) in [(small_seed, 30_000), (large_seed, large)] {
        eprintln!("{kind}, {count} accounts: S7 and the clean-up");
        let mut target = Target::new(start(args, &binary, seeded).await?, count).await;
        target
            .login_during_cleanup(plan, wants(args, "S7"), !args.skip_cleanup_wait)
            .await?;
        targets.push(target);
    }
    let [mut small, mut large_target]: [Target; 2] = targets
        .try_into()
        .map_err(|_| "two deployments".to_string())?;
    // S0 always runs: it is the baseline.
    let steady = std::iter::once("S0")
        .chain(STEADY)
        .filter(|s| *s == "S0" || wants(args, s));
    for (turn, scenario) in steady.enumerate() {
        let pair = if turn % 2 == 0 {
            [&mut small, &mut large_target]
        } else {
            [&mut large_target, &mut small]
        };
        for target in pair {
            eprintln!("{kind}, {} accounts:", target.measured.seeded);
            target.run(scenario, plan, &binary).await?;
        }
    }
    let mut small = small.remove().await;
    let mut large_measured = large_target.remove().await;
    if wants(args, "S2p") {
        // Both halves on a database of the same small size: a check of the drift left, as S0.
        for measured in [&mut small, &mut large_measured] {
            let s2p = production_logins(args, kind, &binary, plan).await?;
            measured.results.insert("S2p", s2p);
        }
    }
    Ok((
        report(args, kind, &machine, &hash, &small),
        report(args, kind, &machine, &hash, &large_measured),
    ))
}

/// One deployment's results: JSON (the shape of `latest.json`) and a Markdown table.
fn report(
    args: &Args,
    kind: &str,
    machine: &Value,
    hash: &HashCost,
    measured: &Measured,
) -> (Value, String) {
    let seeded = measured.seeded;
    let none = Vec::new();
    let results = |name: &str| measured.results.get(name).unwrap_or(&none);
    let s0 = results("S0");
    let ceiling_at = |c: usize| {
        s0.iter()
            .find(|l| l.concurrency == c)
            .map_or(0.0, |l| l.per_second)
    };
    let mut table = String::from("| scenario | concurrency | per second | vs ceiling | p50 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|\n");
    for (name, results) in [
        ("S0 ceiling (bare axum)", results("S0")),
        ("S1 protected GET /auth/user", results("S1")),
        ("S2 MFA login (flows)", results("S2")),
        ("S7 MFA login during the clean-up (flows)", results("S7")),
        ("S2p MFA login, argon2 OWASP (flows)", results("S2p")),
        ("S3 enrolment (flows)", results("S3")),
        ("S4 refresh", results("S4")),
        ("S5 recovery-code regeneration", results("S5")),
        ("S6 admin user list + audit", results("S6")),
        ("S8 passkey login, no password (flows)", results("S8")),
        (
            "mixed: logins, refreshes, enrolments, protected calls",
            results("mixed"),
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
    let s2p = results("S2p");
    let s2p_best = best(s2p).map_or(0.0, |b| b.per_second);
    let cores = machine["cores"].as_u64().unwrap_or(1) as f64;
    table.push_str(&format!(
        "\n{seeded} seeded accounts. argon2 limit (cores / one OWASP hash = {:.0} / {:.1} ms): {:.0} logins/s; S2p reaches {:.0} % of it ({:.0} % of the {:.0} hashes/s that bare argon2id manages on all cores at once).\nRSS: idle {:.1} MiB, peak under S2 {:.1} MiB. Fast scenarios use the `low-cost` argon2 profile (m=8 KiB, t=1, p=1).\n",
        cores,
        hash.seconds * 1000.0,
        hash.limit,
        100.0 * s2p_best / hash.limit,
        100.0 * s2p_best / hash.parallel_rate,
        hash.parallel_rate,
        measured.rss_idle,
        measured.rss_peak
    ));
    let scenario = |name: &str, unit: &str| match best(results(name)) {
        Some(b) => json!({ unit: b.per_second, "p99_ms": b.p99_ms, "levels": results(name) }),
        None => json!({ "skipped": true }),
    };
    let mut s2p_json = scenario("S2p", "flows_per_s");
    s2p_json["limit_flows_per_s"] = json!(hash.limit);
    s2p_json["parallel_hash_limit_flows_per_s"] = json!(hash.parallel_rate);
    let mut report = json!({
        "machine": machine,
        "database": kind,
        "users": seeded,
        "quick": args.quick || args.scale,
        "password_profile_fast_scenarios": "low-cost (argon2id m=8 KiB, t=1, p=1)",
        "argon2_owasp_hash_ms": hash.seconds * 1000.0,
        "scenarios": {
            "S0_ceiling": scenario("S0", "rps"),
            "S1_protected": scenario("S1", "rps"),
            "S2_mfa_login": scenario("S2", "flows_per_s"),
            "S7_mfa_login_during_cleanup": scenario("S7", "flows_per_s"),
            "S2p_mfa_login_argon2": s2p_json,
            "S3_enroll": scenario("S3", "flows_per_s"),
            "S4_refresh": scenario("S4", "rps"),
            "S5_regenerate": scenario("S5", "rps"),
            "S6_admin": scenario("S6", "rps"),
            "S8_passkey_login": scenario("S8", "flows_per_s"),
            "mixed": scenario("mixed", "rps"),
        },
        "rss_mib": { "idle": measured.rss_idle, "peak": measured.rss_peak },
    });
    if !measured.counters.is_empty() {
        report["postgres_counters_per_operation"] = json!(measured.counters);
    }
    (report, table)
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
            let ((small, small_table), (large, large_table)) =
                scale(&args, kind, args.large_users, &quick).await?;
            println!("## {kind}, 30,000 accounts\n\n{small_table}\n## {kind}, {} accounts\n\n{large_table}", args.large_users);
            let ratios = ratios(&small, &large);
            eprintln!(
                "{kind}: large vs small {}",
                serde_json::to_string_pretty(&ratios).unwrap_or_default()
            );
            write_json(
                &PathBuf::from(format!("bench/results/scale-{kind}.json")),
                &json!({
                    "small": small,
                    "large": large,
                    "ratios": ratios,
                    "order": "both sizes deployed side by side; each scenario (S0 included) run on one size then the other, the order swapped from one scenario to the next; S7 on each while its first clean-up runs",
                }),
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
