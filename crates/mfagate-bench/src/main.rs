//! `cargo run --release -p mfagate-bench -- [--quick] [--database sqlite|postgres]`
//!
//! Starts the release server on a fresh database, seeds users through the library, drives load
//! over HTTP, and reports every figure beside the HTTP ceiling of this machine (a bare axum
//! server measured in the same run with the same client). Writes a Markdown table to stdout and
//! JSON to `bench/results/latest.json`.

mod load;
mod server;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use mfagate_core::password::{self, Argon2Params};
use mfagate_core::sealing::Sealer;
use mfagate_core::secret::{new_id, SecretBytes};
use mfagate_core::totp::{self, TotpParams};
use mfagate_core::Keys;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

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
    #[arg(long, default_value = "bench/results/latest.json")]
    output: PathBuf,
    /// Internal: run the bare ceiling server on this port.
    #[arg(long, hide = true)]
    bare_server: Option<u16>,
}

/// A fresh database for one deployment, removed afterwards.
enum Database {
    Sqlite { dir: PathBuf },
    Postgres { admin_url: String, name: String },
}

impl Database {
    async fn create(args: &Args) -> Result<(Database, String), String> {
        if args.database == "postgres" {
            let name = format!("mfagate_bench_{}", new_id());
            let mut conn = sqlx::PgConnection::connect(&args.postgres_url)
                .await
                .map_err(|e| e.to_string())?;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .map_err(|e| e.to_string())?;
            let base = args
                .postgres_url
                .rsplit_once('/')
                .map_or(args.postgres_url.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
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
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            }
        }
    }
}

struct SeededUser {
    username: String,
    secret: Vec<u8>,
}

/// Inserts users with TOTP enrolled in one transaction: the same rows the server writes, sealed
/// with the same keys, without an argon2-costed HTTP call per user.
async fn seed(
    url: &str,
    keys: &Keys,
    count: usize,
    password_hash: &str,
) -> Result<Vec<SeededUser>, String> {
    let sealer = Sealer::new(&keys.sealing, &[]);
    let mut users = Vec::with_capacity(count);
    let rows: Vec<(String, String, Vec<u8>, String)> = (0..count)
        .map(|i| {
            let id = new_id();
            let secret = totp::generate_secret();
            let sealed = sealer.seal(&secret, &mfagate_core::service::totp_context(&id));
            (id, format!("seed{i}"), secret, sealed)
        })
        .collect();
    macro_rules! insert_all {
        ($store:expr, $connection:ty, $users_sql:expr, $device_sql:expr) => {{
            let store = $store.map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
            // One transaction on a connection of its own, beside the store's.
            let mut connection = <$connection>::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            let mut tx = connection.begin().await.map_err(|e| e.to_string())?;
            for (id, name, _, sealed) in &rows {
                sqlx::query($users_sql)
                    .bind(id)
                    .bind(name)
                    .bind(format!("{name}@example.com"))
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query($device_sql)
                    .bind(id)
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tx.commit().await.map_err(|e| e.to_string())?;
        }};
    }
    if url.starts_with("sqlite:") {
        insert_all!(
            mfagate_store::SqliteStore::connect(url).await,
            sqlx::SqliteConnection,
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, preferred_method, created_at)
             VALUES (?1, ?2, ?2, ?3, ?3, ?4, 'totp', 0)",
            "INSERT INTO totp_devices (user_id, secret_sealed, created_at) VALUES (?1, ?2, 0)"
        );
    } else {
        insert_all!(
            mfagate_store::PgStore::connect(url, Default::default()).await,
            sqlx::PgConnection,
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, preferred_method, created_at)
             VALUES ($1, $2, $2, $3, $3, $4, 'totp', 0)",
            "INSERT INTO totp_devices (user_id, secret_sealed, created_at) VALUES ($1, $2, 0)"
        );
    }
    for (_, username, secret, _) in rows {
        users.push(SeededUser { username, secret });
    }
    Ok(users)
}

/// One running server on its own fresh database.
struct Deployment {
    server: ServerProcess,
    database: Database,
    users: Arc<Vec<SeededUser>>,
}

async fn deploy(
    args: &Args,
    binary: &std::path::Path,
    profile: &str,
    seeded: usize,
) -> Result<Deployment, String> {
    let (database, url) = Database::create(args).await?;
    let secret = SecretBytes::generate(32);
    let keys = Keys::from_secret(secret.clone(), None, Vec::new());
    let params = Argon2Params::profile(profile).ok_or("unknown profile")?;
    let hash = password::hash_password_blocking(PASSWORD, &params).map_err(|e| e.to_string())?;
    let began = Instant::now();
    let users = seed(&url, &keys, seeded, &hash).await?;
    eprintln!(
        "  seeded {seeded} users with TOTP in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let port = free_port();
    let env: Vec<(String, String)> = [
        ("MFAGATE_LISTEN", format!("127.0.0.1:{port}")),
        ("MFAGATE_DATABASE_URL", url),
        ("MFAGATE_SECRET_KEY", secret.to_hex()),
        ("MFAGATE_ARGON2_PROFILE", profile.to_string()),
        ("MFAGATE_IP_THROTTLE", "off".to_string()),
        ("MFAGATE_LOGIN_THROTTLE", "off".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let server = ServerProcess::spawn(binary, &["serve"], &env, port).await?;
    Ok(Deployment {
        server,
        database,
        users: Arc::new(users),
    })
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A login then a TOTP code, for the next seeded user (each used once).
async fn mfa_flow(
    client: &reqwest::Client,
    base: &str,
    users: &[SeededUser],
    next: &AtomicUsize,
) -> Result<bool, String> {
    let index = next.fetch_add(1, Ordering::Relaxed);
    let Some(user) = users.get(index) else {
        return Ok(false);
    };
    let login = post(
        client,
        format!("{base}/auth/login"),
        json!({"username": user.username, "password": PASSWORD}),
        None,
    )
    .await?;
    let ephemeral = login["ephemeral_token"].as_str().ok_or("no challenge")?;
    let code = totp::code_at(&user.secret, now(), &TotpParams::default());
    let tokens = post(
        client,
        format!("{base}/auth/mfa/verify"),
        json!({"ephemeral_token": ephemeral, "code": code}),
        None,
    )
    .await?;
    tokens["access"]
        .as_str()
        .map(|_| true)
        .ok_or_else(|| "no access token".into())
}

/// S2 and S2p: login then TOTP for seeded users, each user once.
async fn mfa_login_levels(
    name: &str,
    plan: &Plan,
    base: &str,
    users: Arc<Vec<SeededUser>>,
    next: Arc<AtomicUsize>,
) -> Vec<LevelResult> {
    levels(name, plan, |c| {
        let (client, base, users, next) =
            (client(c), base.to_string(), users.clone(), next.clone());
        Arc::new(move |_: usize, _: u64| {
            let (client, base, users, next) =
                (client.clone(), base.clone(), users.clone(), next.clone());
            async move { mfa_flow(&client, &base, &users, &next).await }
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

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if let Some(port) = args.bare_server {
        server::run_bare_server(port).await;
        return Ok(());
    }
    let plan = if args.quick {
        Plan {
            levels: vec![32],
            duration: Duration::from_secs(3),
        }
    } else {
        Plan {
            levels: vec![1, 16, 64],
            duration: Duration::from_secs(8),
        }
    };
    let wants = |scenario: &str| {
        args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(scenario))
    };
    let binary = server::mfagate_binary()?;
    let machine = machine();
    let cores = machine["cores"].as_u64().unwrap_or(1) as f64;
    eprintln!(
        "mfagate benchmark: {} on {}, {} cores",
        args.database, machine["cpu"], cores
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
    eprintln!(
        "  one argon2id hash (19 MiB, t=2): {:.1} ms -> limit {:.0} logins/s",
        hash_seconds * 1000.0,
        argon2_limit
    );
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
    eprintln!("  argon2id on all {cores} cores at once: {parallel_hash_rate:.0} hashes/s");

    // S0: the ceiling.
    let port = free_port();
    let self_exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bare =
        ServerProcess::spawn(&self_exe, &["--bare-server", &port.to_string()], &[], port).await?;
    let base = bare.base.clone();
    let s0 = levels("S0 ceiling", &plan, |c| {
        let (client, url) = (client(c), format!("{base}/ceiling"));
        let op = Arc::new(move |_: usize, _: u64| {
            let (client, url) = (client.clone(), url.clone());
            async move { get(&client, url, None).await.map(|_| true) }
        });
        op
    })
    .await;
    drop(bare);

    // The server with the low-cost hashing profile: S1 to S4.
    let seeded = if args.quick { 30_000 } else { 120_000 };
    let deployment = deploy(&args, &binary, "low-cost", seeded).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = deployment.server.rss_mib();
    let base = deployment.server.base.clone();

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
        levels("S1 protected", &plan, |c| {
            let (client, url, token) = (client(c), format!("{base}/auth/user"), token.clone());
            let op = Arc::new(move |_: usize, _: u64| {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                async move { get(&client, url, Some(&token)).await.map(|_| true) }
            });
            op
        })
        .await
    };

    let next_user = Arc::new(AtomicUsize::new(0));
    let s2 = if !wants("S2") {
        Vec::new()
    } else {
        mfa_login_levels(
            "S2 MFA login",
            &plan,
            &base,
            deployment.users.clone(),
            next_user.clone(),
        )
        .await
    };
    let rss_peak = deployment.server.peak_rss_mib();
    eprintln!(
        "  users used in S2: {} of {}",
        next_user.load(Ordering::Relaxed).min(seeded),
        seeded
    );

    let level_tag = AtomicUsize::new(0);
    let s3 = if !wants("S3") {
        Vec::new()
    } else {
        levels("S3 enrolment", &plan, |c| {
        let tag = level_tag.fetch_add(1, Ordering::Relaxed);
        let (client, base) = (client(c), base.clone());
        let op = Arc::new(move |worker: usize, iteration: u64| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let name = format!("e{tag}w{worker}i{iteration}");
                let registered = post(&client, format!("{base}/auth/register"), json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}), None).await?;
                let access = registered["access"].as_str().ok_or("no token")?.to_string();
                let begun = get(&client, format!("{base}/auth/mfa/totp/activate"), Some(&access)).await?;
                let secret = data_encoding::BASE32_NOPAD
                    .decode(begun["secret"].as_str().unwrap_or_default().as_bytes())
                    .map_err(|e| e.to_string())?;
                let code = totp::code_at(&secret, now(), &TotpParams::default());
                post(&client, format!("{base}/auth/mfa/totp/activate"), json!({"activation_token": begun["activation_token"], "code": code}), Some(&access)).await?;
                Ok(true)
            }
        });
        op
    })
    .await
    };

    let mut s4 = Vec::new();
    for &concurrency in plan.levels.iter().filter(|_| wants("S4")) {
        let client = client(concurrency);
        let mut chains = Vec::new();
        for worker in 0..concurrency {
            let name = format!("r{concurrency}w{worker}");
            let registered = post(&client, format!("{base}/auth/register"), json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}), None).await?;
            chains.push(Mutex::new(
                registered["refresh"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        let chains = Arc::new(chains);
        let url = format!("{base}/auth/token/refresh");
        let op = Arc::new(move |worker: usize, _: u64| {
            let (client, url, chains) = (client.clone(), url.clone(), chains.clone());
            async move {
                let current = chains[worker].lock().map_err(|e| e.to_string())?.clone();
                let pair = post(&client, url, json!({"refresh": current}), None).await?;
                *chains[worker].lock().map_err(|e| e.to_string())? =
                    pair["refresh"].as_str().unwrap_or_default().to_string();
                Ok(true)
            }
        });
        let result = load::run(concurrency, plan.duration, op).await;
        eprintln!(
            "  S4 refresh c={concurrency}: {:.0}/s p99 {:.2} ms errors {}",
            result.per_second, result.p99_ms, result.errors
        );
        s4.push(result);
    }
    let Deployment {
        server, database, ..
    } = deployment;
    drop(server);
    database.remove().await;

    // S2p: the same flow with production argon2 parameters.
    let mut s2p = Vec::new();
    if wants("S2p") {
        let production = deploy(
            &args,
            &binary,
            "owasp",
            if args.quick { 1_000 } else { 4_000 },
        )
        .await?;
        let base = production.server.base.clone();
        let next_user = Arc::new(AtomicUsize::new(0));
        s2p = mfa_login_levels(
            "S2p MFA login, argon2 OWASP",
            &plan,
            &base,
            production.users.clone(),
            next_user.clone(),
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
        ("S2p MFA login, argon2 OWASP (flows)", &s2p),
        ("S3 enrolment (flows)", &s3),
        ("S4 refresh", &s4),
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
        "\nargon2 limit (cores / one OWASP hash = {:.0} / {:.1} ms): {:.0} logins/s; S2p reaches {:.0} % of it ({:.0} % of the {:.0} hashes/s that bare argon2id manages on all cores at once).\nRSS: idle {:.1} MiB, peak under S2 {:.1} MiB. Fast scenarios use the `low-cost` argon2 profile (m=8 KiB, t=1, p=1).\n",
        cores,
        hash_seconds * 1000.0,
        argon2_limit,
        100.0 * s2p_best / argon2_limit,
        100.0 * s2p_best / parallel_hash_rate,
        parallel_hash_rate,
        rss_idle,
        rss_peak
    ));
    println!("{table}");
    let scenario = |results: &[LevelResult], unit: &str| match best(results) {
        Some(b) => json!({ unit: b.per_second, "p99_ms": b.p99_ms, "levels": results }),
        None => json!({ "skipped": true }),
    };
    let mut s2p_json = scenario(&s2p, "flows_per_s");
    s2p_json["limit_flows_per_s"] = json!(argon2_limit);
    s2p_json["parallel_hash_limit_flows_per_s"] = json!(parallel_hash_rate);
    let report = json!({
        "machine": machine,
        "database": args.database,
        "quick": args.quick,
        "password_profile_fast_scenarios": "low-cost (argon2id m=8 KiB, t=1, p=1)",
        "argon2_owasp_hash_ms": hash_seconds * 1000.0,
        "scenarios": {
            "S0_ceiling": scenario(&s0, "rps"),
            "S1_protected": scenario(&s1, "rps"),
            "S2_mfa_login": scenario(&s2, "flows_per_s"),
            "S2p_mfa_login_argon2": s2p_json,
            "S3_enroll": scenario(&s3, "flows_per_s"),
            "S4_refresh": scenario(&s4, "rps"),
        },
        "rss_mib": { "idle": rss_idle, "peak": rss_peak },
    });
    if let Some(parent) = args.output.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        &args.output,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("writing {}: {e}", args.output.display()))?;
    eprintln!("results written to {}", args.output.display());
    Ok(())
}
