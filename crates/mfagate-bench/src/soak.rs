//! The soak (`--soak MINUTES`): mixed traffic for as long as asked against the server on a
//! fresh database, while faults are injected at random moments, one at a time:
//!
//! - every database: the server is killed with SIGKILL and restarted on the same database;
//! - PostgreSQL: two instances share the database behind a client-side balancer (a connection
//!   refused goes to the other one), one of them is killed and restarted while the other must
//!   keep serving, and the database goes away for a few seconds through a proxy (the servers
//!   answer `503` meanwhile and must recover without a restart);
//! - SQLite: the database lives on a tmpfs mount whose limit is cut to what it holds for a few
//!   seconds, a full disk, and then given back (writes answer `503` meanwhile and resume
//!   without a restart);
//!   this needs the right to mount (root), and the report says when it could not be done.
//!
//! As the traffic runs, each worker checks from the client side what must never happen: a
//! recovery code or a TOTP step accepted twice, a rotated refresh token taken again, a 5xx other
//! than `503`. At the end every answered registration, enrolment and password change must still
//! be in effect. `--calm` injects no faults, so that one server life lasts the whole run and its
//! resident memory can be seen to level off (checked in runs of 10 minutes or more). The report
//! goes to `bench/results/soak-KIND.json`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mfagate_core::secret::SecretBytes;
use mfagate_core::totp::{self, TotpParams};
use rand::Rng;
use serde_json::{json, Value};

use crate::server::{free_port, ServerProcess};
use crate::{now, Database};

const FIRST_PASSWORD: &str = "soak password 0";

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    answered: AtomicU64,
    unavailable: AtomicU64,
    unreachable: AtomicU64,
    checks: AtomicU64,
    failed_over: AtomicU64,
    kills: AtomicU64,
    database_cuts: AtomicU64,
    disk_full: AtomicU64,
}

struct Shared {
    /// One base URL per instance; each request goes to one at random, as behind a balancer.
    bases: Vec<String>,
    client: reqwest::Client,
    stop_at: Instant,
    counters: Counters,
    /// How many times each invariant was checked.
    checked: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    violations: Mutex<Vec<String>>,
    /// Accounts registered by the fault injector to prove writes resumed; checked at the end.
    probes: Mutex<Vec<Account>>,
}

impl Shared {
    fn violation(&self, what: String) {
        eprintln!("  VIOLATION: {what}");
        if let Ok(mut v) = self.violations.lock() {
            v.push(what);
        }
    }

    fn check(&self, invariant: &'static str, ok: bool, what: impl FnOnce() -> String) {
        self.counters.checks.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut checked) = self.checked.lock() {
            *checked.entry(invariant).or_default() += 1;
        }
        if !ok {
            self.violation(what());
        }
    }

    /// A request; `None` when the server could not be reached (it is being killed). A 5xx other
    /// than `503` is a violation. With two instances the request goes to either; when the one
    /// chosen refuses the connection (nothing was sent) it goes to the other, as a balancer does.
    async fn call(
        &self,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Option<(u16, Value)> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let first = rand::thread_rng().gen_range(0..self.bases.len());
        let mut sent = None;
        for attempt in 0..self.bases.len() {
            let url = format!("{}{path}", self.bases[(first + attempt) % self.bases.len()]);
            let mut request = match &body {
                Some(body) => self.client.post(&url).json(body),
                None => self.client.get(&url),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) => {
                    sent = Some(response);
                    break;
                }
                Err(error) if error.is_connect() && attempt + 1 < self.bases.len() => {
                    self.counters.failed_over.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        let Some(response) = sent else {
            self.counters.unreachable.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let status = response.status().as_u16();
        let Ok(body) = response.json::<Value>().await else {
            self.counters.unreachable.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.counters.answered.fetch_add(1, Ordering::Relaxed);
        if status == 503 {
            self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        } else if status >= 500 {
            self.violation(format!("{path} answered {status}: {body}"));
        }
        Some((status, body))
    }
}

/// What a worker knows of one account: what the server acknowledged, and what is uncertain
/// because the answer was lost to a kill.
struct Account {
    username: String,
    /// The passwords the account may have: one, or two while a change's answer was lost.
    passwords: Vec<String>,
    secret: Option<Vec<u8>>,
    unused_codes: Vec<String>,
    last_step: i64,
    refresh: Option<String>,
    access: Option<String>,
}

fn token(body: &Value, field: &str) -> Option<String> {
    body[field].as_str().map(str::to_string)
}

async fn register(shared: &Shared, username: String) -> Option<Account> {
    let (status, body) = shared
        .call(
            "/auth/register",
            Some(json!({"username": username, "email": format!("{username}@example.com"), "password": FIRST_PASSWORD})),
            None,
        )
        .await?;
    (status == 201).then(|| Account {
        username,
        passwords: vec![FIRST_PASSWORD.to_string()],
        secret: None,
        unused_codes: Vec::new(),
        last_step: 0,
        refresh: token(&body, "refresh"),
        access: token(&body, "access"),
    })
}

async fn enrol(shared: &Shared, account: &mut Account) {
    let Some(access) = account.access.clone() else {
        return;
    };
    let Some((200, begun)) = shared
        .call("/auth/mfa/totp/activate", None, Some(&access))
        .await
    else {
        return;
    };
    let Some(secret) = begun["secret"]
        .as_str()
        .and_then(|s| data_encoding::BASE32_NOPAD.decode(s.as_bytes()).ok())
    else {
        return;
    };
    let step = totp::step_at(now(), 30);
    let code = totp::code_for_step(&secret, step, &TotpParams::default());
    let answer = shared
        .call(
            "/auth/mfa/totp/activate",
            Some(json!({"activation_token": begun["activation_token"], "code": code})),
            Some(&access),
        )
        .await;
    if let Some((200, body)) = answer {
        account.secret = Some(secret);
        account.last_step = step;
        account.unused_codes = body["recovery_codes"]
            .as_array()
            .map(|codes| {
                codes
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        account.refresh = token(&body, "refresh");
        account.access = token(&body, "access");
    }
}

/// A login's challenge with the account's password(s).
async fn challenge(shared: &Shared, account: &Account) -> Option<String> {
    for password in &account.passwords {
        if let Some((200, body)) = shared
            .call(
                "/auth/login",
                Some(json!({"username": account.username, "password": password})),
                None,
            )
            .await
        {
            return token(&body, "ephemeral_token");
        }
    }
    None
}

/// A login answered with `code`; `None` when no challenge or no answer came (a kill).
async fn answer_with(shared: &Shared, account: &Account, code: &str) -> Option<(u16, Value)> {
    let ephemeral = challenge(shared, account).await?;
    shared
        .call(
            "/auth/mfa/verify",
            Some(json!({"ephemeral_token": ephemeral, "code": code})),
            None,
        )
        .await
}

/// `code` was accepted once: on a new challenge it must not be (a refusal, a throttle, or a
/// `503` while the database is away are all not accepting it).
async fn replay_is_refused(
    shared: &Shared,
    account: &Account,
    code: &str,
    invariant: &'static str,
) {
    if let Some((status, body)) = answer_with(shared, account, code).await {
        shared.check(invariant, status != 200, || {
            format!(
                "{invariant}: {}'s code {code} was accepted again: {status} {body}",
                account.username
            )
        });
    }
}

/// One recovery code: accepted once, refused when used again. A code whose answer was lost to
/// a kill is neither used again nor counted as used.
async fn recovery_code_login(shared: &Shared, account: &mut Account) {
    let Some(code) = account.unused_codes.pop() else {
        return;
    };
    if let Some((200, body)) = answer_with(shared, account, &code).await {
        account.refresh = token(&body, "refresh");
        account.access = token(&body, "access");
        replay_is_refused(shared, account, &code, "recovery code used once").await;
    }
}

/// The current TOTP step: accepted once, refused on a second challenge. A step whose answer
/// was lost is never used again either.
async fn totp_login(shared: &Shared, account: &mut Account) {
    let Some(secret) = account.secret.clone() else {
        return;
    };
    let step = totp::step_at(now(), 30);
    if step <= account.last_step {
        return;
    }
    let code = totp::code_for_step(&secret, step, &TotpParams::default());
    account.last_step = step;
    if let Some((200, body)) = answer_with(shared, account, &code).await {
        account.refresh = token(&body, "refresh");
        account.access = token(&body, "access");
        replay_is_refused(shared, account, &code, "TOTP step accepted once").await;
    }
}

/// A rotation; then, now and then, the rotated token again: it must be refused.
async fn refresh(shared: &Shared, account: &mut Account, replay: bool) {
    let Some(old) = account.refresh.take() else {
        return;
    };
    let Some((status, body)) = shared
        .call("/auth/token/refresh", Some(json!({"refresh": old})), None)
        .await
    else {
        return;
    };
    if status != 200 {
        return;
    }
    account.refresh = token(&body, "refresh");
    account.access = token(&body, "access");
    if replay {
        if let Some((status, body)) = shared
            .call("/auth/token/refresh", Some(json!({"refresh": old})), None)
            .await
        {
            shared.check("refresh token rotated once", status != 200, || {
                format!(
                    "a rotated refresh token of {} was taken again: {status} {body}",
                    account.username
                )
            });
            // Reuse revokes the session: the current token is dead too.
            account.refresh = None;
        }
    }
}

async fn change_password(shared: &Shared, account: &mut Account, n: u64) {
    let (Some(access), [current]) = (account.access.clone(), account.passwords.as_slice()) else {
        return;
    };
    let current = current.clone();
    let new = format!("soak password {n}");
    match shared
        .call(
            "/auth/password/change",
            Some(json!({"old_password": current, "new_password": new})),
            Some(&access),
        )
        .await
    {
        Some((200, _)) => {
            account.passwords = vec![new];
            account.refresh = None;
            account.access = None;
        }
        // No answer, or `503`: the change may have committed with its answer lost (the
        // database went away between its commit and the reply), so either password may hold.
        None | Some((503, _)) => account.passwords = vec![current, new],
        Some(_) => {}
    }
}

async fn worker(shared: Arc<Shared>, id: usize) -> Vec<Account> {
    let mut accounts: Vec<Account> = Vec::new();
    let mut n = 0u64;
    while Instant::now() < shared.stop_at {
        n += 1;
        let choice = rand::thread_rng().gen_range(0..100);
        if accounts.is_empty() || choice < 8 {
            if let Some(mut account) = register(&shared, format!("soak-{id}-{n}")).await {
                enrol(&shared, &mut account).await;
                accounts.push(account);
            }
            continue;
        }
        let index = rand::thread_rng().gen_range(0..accounts.len());
        let account = &mut accounts[index];
        match choice {
            8..=39 => refresh(&shared, account, choice < 14).await,
            40..=59 => recovery_code_login(&shared, account).await,
            60..=79 => totp_login(&shared, account).await,
            80..=84 => change_password(&shared, account, n).await,
            _ => {
                if let Some(access) = account.access.clone() {
                    shared.call("/auth/user", None, Some(&access)).await;
                }
            }
        }
    }
    accounts
}

/// Every acknowledged registration, password and enrolment is still in effect.
async fn final_checks(shared: &Shared, accounts: &[Account]) {
    for account in accounts {
        let mut answer = None;
        let mut refused = Vec::new();
        for password in &account.passwords {
            match shared
                .call(
                    "/auth/login",
                    Some(json!({"username": account.username, "password": password})),
                    None,
                )
                .await
            {
                Some((200, body)) => {
                    answer = Some(body);
                    break;
                }
                other => refused.push(format!("{other:?}")),
            }
        }
        shared.check(
            "acknowledged registration and password in effect",
            answer.is_some(),
            || {
                format!(
                    "{} cannot log in with its acknowledged password: {refused:?}",
                    account.username
                )
            },
        );
        if let (Some(body), Some(_)) = (&answer, &account.secret) {
            shared.check(
                "acknowledged enrolment in effect",
                body["mfa_required"] == true,
                || {
                    format!(
                        "{}'s acknowledged TOTP enrolment is gone: {body}",
                        account.username
                    )
                },
            );
        }
    }
}

/// One server process of the deployment, restarted in place after a kill.
struct Instance {
    port: u16,
    env: Vec<(String, String)>,
    process: tokio::sync::Mutex<Option<ServerProcess>>,
}

impl Instance {
    async fn start(binary: &Path, env: &[(String, String)]) -> Result<Self, String> {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("MFAGATE_LISTEN".into(), format!("127.0.0.1:{port}")));
        let process = ServerProcess::spawn(binary, &["serve"], &env, port).await?;
        Ok(Self {
            port,
            env,
            process: tokio::sync::Mutex::new(Some(process)),
        })
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `/healthz` answers 200: the server is up and reaches its database.
    async fn is_healthy(&self, client: &reqwest::Client) -> bool {
        client
            .get(format!("{}/healthz", self.base()))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    async fn rss_mib(&self) -> f64 {
        self.process
            .lock()
            .await
            .as_ref()
            .map_or(0.0, ServerProcess::rss_mib)
    }

    /// SIGKILL, then the same server again on the same database. Answers the resident memory
    /// it had before the kill and how long it was down (seconds).
    async fn kill_and_restart(&self, binary: &Path) -> Result<(f64, f64), String> {
        let mut guard = self.process.lock().await;
        let rss = guard.as_ref().map_or(0.0, ServerProcess::rss_mib);
        *guard = None; // dropping it sends SIGKILL and reaps it
        let down = Instant::now();
        *guard = Some(ServerProcess::spawn(binary, &["serve"], &self.env, self.port).await?);
        Ok((rss, down.elapsed().as_secs_f64()))
    }
}

/// What the fault injector can do to this deployment.
struct Faults {
    binary: PathBuf,
    instances: Arc<Vec<Instance>>,
    proxy: Option<Arc<DatabaseProxy>>,
    disk: Option<Arc<DiskFiller>>,
}

/// The faults a deployment can be given (the database decides which: see `Faults::run`).
enum Fault {
    Kill,
    DatabaseAway,
    DiskFull,
}

#[derive(Default)]
struct FaultLog {
    rss_before_kills: Vec<f64>,
    restart_seconds: Vec<f64>,
}

impl Faults {
    /// One fault at a time, at random moments (every 5 to 20 s in short runs; every 1 to 3
    /// minutes in runs of 10 minutes or more, so that each server life is long enough to see
    /// its memory settle), each kind as likely as the others.
    async fn run(self, shared: Arc<Shared>, minutes: f64) -> FaultLog {
        let between = if minutes >= 10.0 {
            60.0..180.0
        } else {
            5.0..20.0
        };
        let mut log = FaultLog::default();
        let mut faults = 0u64;
        loop {
            let wait = rand::thread_rng().gen_range(between.clone());
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            if Instant::now() + Duration::from_secs(10) >= shared.stop_at {
                return log;
            }
            faults += 1;
            let mut kinds = vec![Fault::Kill];
            if self.proxy.is_some() {
                kinds.push(Fault::DatabaseAway);
            }
            if self.disk.is_some() {
                kinds.push(Fault::DiskFull);
            }
            let pick = rand::thread_rng().gen_range(0..kinds.len());
            let done = match kinds[pick] {
                Fault::Kill => self.kill_one(&shared, &mut log).await,
                Fault::DatabaseAway => self.database_away(&shared).await,
                Fault::DiskFull => self.disk_full(&shared, faults).await,
            };
            if let Err(error) = done {
                shared.violation(error);
                return log;
            }
        }
    }

    /// SIGKILL one instance and restart it; with two, the other must keep answering meanwhile.
    async fn kill_one(&self, shared: &Shared, log: &mut FaultLog) -> Result<(), String> {
        let victim = rand::thread_rng().gen_range(0..self.instances.len());
        let restart = self.instances[victim].kill_and_restart(&self.binary);
        let other = (victim + 1) % self.instances.len();
        let others_health = async {
            if other == victim {
                return None;
            }
            // Asked while the victim is down: a restart takes 50 ms or more (process start,
            // migrations checked, the first /healthz poll).
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some(self.instances[other].is_healthy(&shared.client).await)
        };
        let (restarted, other_answered) = tokio::join!(restart, others_health);
        shared.counters.kills.fetch_add(1, Ordering::Relaxed);
        let (rss, seconds) = restarted.map_err(|e| format!("no recovery after a kill: {e}"))?;
        log.rss_before_kills.push(rss);
        log.restart_seconds.push(seconds);
        if let Some(answered) = other_answered {
            shared.check(
                "the other instance serves while one restarts",
                answered,
                || format!("instance {other} did not answer /healthz while instance {victim} restarted"),
            );
        }
        Ok(())
    }

    /// The database goes away for 2 to 6 s: the servers answer 503 meanwhile and must recover
    /// without a restart.
    async fn database_away(&self, shared: &Shared) -> Result<(), String> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        proxy.cut();
        shared
            .counters
            .database_cuts
            .fetch_add(1, Ordering::Relaxed);
        let away = rand::thread_rng().gen_range(2.0..6.0);
        tokio::time::sleep(Duration::from_secs_f64(away)).await;
        proxy.restore();
        for instance in self.instances.iter() {
            let recovered = poll_for(Duration::from_secs(30), || {
                instance.is_healthy(&shared.client)
            })
            .await;
            shared.check(
                "recovery from a database outage without a restart",
                recovered,
                || "a server did not answer /healthz within 30 s of the database's return".into(),
            );
        }
        Ok(())
    }

    /// The disk under SQLite is full for 2 to 6 s, then is freed: writes answer
    /// 503 meanwhile, and must resume without a restart (a new account is registered to prove
    /// it; the final checks log in to it).
    async fn disk_full(&self, shared: &Shared, n: u64) -> Result<(), String> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let held = disk.fill()?;
        shared.counters.disk_full.fetch_add(1, Ordering::Relaxed);
        let full = rand::thread_rng().gen_range(2.0..6.0);
        tokio::time::sleep(Duration::from_secs_f64(full)).await;
        disk.free()
            .map_err(|e| format!("cannot free the disk (full at {held} bytes): {e}"))?;
        let probe = Mutex::new(None);
        let mut attempt = 0;
        let resumed = poll_for(Duration::from_secs(30), || {
            // A new name each time: an attempt whose answer was lost may have taken its name.
            attempt += 1;
            let username = format!("soak-probe-{n}-{attempt}");
            let probe = &probe;
            async move {
                let Some(account) = register(shared, username).await else {
                    return false;
                };
                if let Ok(mut probe) = probe.lock() {
                    *probe = Some(account);
                }
                true
            }
        })
        .await;
        shared.check(
            "writes resume after a full disk is freed, without a restart",
            resumed,
            || "no registration succeeded within 30 s of the disk being freed".into(),
        );
        if let (Ok(Some(account)), Ok(mut probes)) = (probe.into_inner(), shared.probes.lock()) {
            probes.push(account);
        }
        Ok(())
    }
}

/// Polls `ok` every 100 ms until it says yes (true) or `limit` passes (false).
async fn poll_for<F, Fut>(limit: Duration, mut ok: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let began = Instant::now();
    while began.elapsed() < limit {
        if ok().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Resident memory levels off: the highest sample of the run's last quarter is within 20 %
/// (plus 8 MiB of allocator slack) of the highest of its second quarter, by when pools and
/// caches have filled. A leak of one allocation per request grows without end and fails it.
fn memory_levels_off(samples: &[f64]) -> Result<String, String> {
    let quarter = samples.len() / 4;
    if quarter < 3 {
        return Err(format!(
            "not made: {} samples (at least 12, a run of 2 minutes or more)",
            samples.len()
        ));
    }
    let settled = samples[quarter..2 * quarter]
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    let late = samples[3 * quarter..].iter().cloned().fold(0.0, f64::max);
    let limit = settled * 1.2 + 8.0;
    if late <= limit {
        Ok(format!(
            "levelled off: {settled:.1} MiB at most in the second quarter, {late:.1} MiB in the last (limit {limit:.1})"
        ))
    } else {
        Err(format!(
            "grew: {settled:.1} MiB at most in the second quarter, {late:.1} MiB in the last (limit {limit:.1})"
        ))
    }
}

pub async fn soak(
    binary: &Path,
    database: Database,
    url: String,
    minutes: f64,
    kind: &str,
    calm: bool,
) -> Result<Value, String> {
    let secret = SecretBytes::generate(32);
    // On PostgreSQL the servers reach the database through a proxy that can cut it away.
    let (proxy, server_url) = if kind == "postgres" {
        let (_, upstream) = through_proxy(&url, 0).ok_or("cannot read the database URL")?;
        let proxy = DatabaseProxy::start(upstream).await?;
        let (proxied, _) = through_proxy(&url, proxy.port).ok_or("cannot read the database URL")?;
        (Some(Arc::new(proxy)), proxied)
    } else {
        (None, url.clone())
    };
    // On SQLite the database's directory becomes a small file system of its own to fill.
    let (disk, disk_note) = match (&database, calm) {
        (Database::Sqlite { dir }, false) => match DiskFiller::mount(dir) {
            Ok(disk) => (
                Some(Arc::new(disk)),
                "injected: a tmpfs under the database, its limit cut to what it holds".to_string(),
            ),
            Err(error) => {
                eprintln!("soak: no full-disk faults: {error}");
                (None, format!("not injected: {error}"))
            }
        },
        (Database::Sqlite { .. }, true) => (None, "not injected: a calm run".into()),
        (Database::Postgres { .. }, _) => (None, "not injected: PostgreSQL".into()),
    };
    let env: Vec<(String, String)> = [
        ("MFAGATE_DATABASE_URL", server_url),
        ("MFAGATE_SECRET_KEY", secret.to_hex()),
        ("MFAGATE_ARGON2_PROFILE", "low-cost".to_string()),
        ("MFAGATE_IP_THROTTLE", "off".to_string()),
        ("MFAGATE_LOGIN_THROTTLE", "off".to_string()),
        ("MFAGATE_MFA_USER_FAILURES", "off".to_string()),
        // Replays and kills leave challenges open; three per user would refuse the checks.
        ("MFAGATE_MFA_MAX_CHALLENGES", "1000".to_string()),
        ("MFAGATE_HASH_QUEUE_PER_IP", "100000".to_string()),
        ("MFAGATE_SECURITY_EMAILS", "false".to_string()),
        ("RUST_LOG", "error".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // Two instances where the database can be shared; SQLite has one writer process.
    let count = if kind == "postgres" { 2 } else { 1 };
    let mut instances = Vec::new();
    for _ in 0..count {
        instances.push(Instance::start(binary, &env).await?);
    }
    let instances = Arc::new(instances);
    let shared = Arc::new(Shared {
        bases: instances.iter().map(Instance::base).collect(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?,
        stop_at: Instant::now() + Duration::from_secs_f64(minutes * 60.0),
        counters: Counters::default(),
        checked: Mutex::new(Default::default()),
        violations: Mutex::new(Vec::new()),
        probes: Mutex::new(Vec::new()),
    });
    eprintln!(
        "soak: {minutes} min on {kind}, {count} instance(s), {}",
        if calm {
            "no faults"
        } else {
            "faults at random moments"
        }
    );
    let began = Instant::now();

    // The proxy and the mount live to the end of the run, after the injector has stopped.
    let faults = Faults {
        binary: binary.to_path_buf(),
        instances: instances.clone(),
        proxy: proxy.clone(),
        disk: disk.clone(),
    };
    let injector = if calm {
        None
    } else {
        Some(tokio::spawn(faults.run(shared.clone(), minutes)))
    };
    // Resident memory every 10 s, of each instance's current life: a leak shows as growth
    // within a life (a calm run has one life).
    let sampler = {
        let (instances, shared) = (instances.clone(), shared.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < shared.stop_at {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let mut sample = vec![json!(began.elapsed().as_secs())];
                for instance in instances.iter() {
                    sample.push(json!(instance.rss_mib().await));
                }
                samples.push(Value::Array(sample));
            }
            samples
        })
    };
    let workers: Vec<_> = (0..8)
        .map(|id| tokio::spawn(worker(shared.clone(), id)))
        .collect();
    let mut accounts = Vec::new();
    for w in workers {
        accounts.extend(w.await.map_err(|e| e.to_string())?);
    }
    let log = match injector {
        Some(injector) => injector.await.map_err(|e| e.to_string())?,
        None => FaultLog::default(),
    };
    let rss_samples = sampler.await.map_err(|e| e.to_string())?;
    let probes = std::mem::take(&mut *shared.probes.lock().map_err(|e| e.to_string())?);
    final_checks(&shared, &accounts).await;
    final_checks(&shared, &probes).await;
    let mut final_rss = Vec::new();
    for instance in instances.iter() {
        final_rss.push(instance.rss_mib().await);
    }
    // Each instance's column of the samples (column 0 is the time).
    let memory_check = if calm && minutes >= 10.0 {
        let verdicts: Vec<Result<String, String>> = (1..=instances.len())
            .map(|column| {
                let samples: Vec<f64> = rss_samples
                    .iter()
                    .filter_map(|s| s.get(column).and_then(Value::as_f64))
                    .collect();
                memory_levels_off(&samples)
                    .map(|ok| format!("instance {}: {ok}", column - 1))
                    .map_err(|grew| format!("instance {}: {grew}", column - 1))
            })
            .collect();
        for verdict in &verdicts {
            shared.check("resident memory levels off", verdict.is_ok(), || {
                format!(
                    "resident memory {}",
                    verdict.clone().err().unwrap_or_default()
                )
            });
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|e| e))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        "not made: runs of 10 minutes or more with --calm (kills restart the server)".into()
    };
    for instance in instances.iter() {
        drop(instance.process.lock().await.take());
    }
    let c = &shared.counters;
    let violations = shared
        .violations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let report = json!({
        "database": kind,
        "instances": count,
        "calm": calm,
        "minutes": began.elapsed().as_secs_f64() / 60.0,
        "kills": c.kills.load(Ordering::Relaxed),
        "database_cuts": c.database_cuts.load(Ordering::Relaxed),
        "disk_full": c.disk_full.load(Ordering::Relaxed),
        "disk_full_faults": disk_note,
        "restart_seconds_max": log.restart_seconds.iter().cloned().fold(0.0, f64::max),
        "requests": c.requests.load(Ordering::Relaxed),
        "answered": c.answered.load(Ordering::Relaxed),
        "unavailable_503": c.unavailable.load(Ordering::Relaxed),
        "unreachable_during_kills": c.unreachable.load(Ordering::Relaxed),
        "failed_over_to_the_other_instance": c.failed_over.load(Ordering::Relaxed),
        "accounts": accounts.len() + probes.len(),
        "invariant_checks": c.checks.load(Ordering::Relaxed),
        "invariant_checks_by_kind": shared.checked.lock().map(|m| json!(*m)).unwrap_or_default(),
        "violations": violations,
        "memory_check": memory_check,
        "rss_mib_before_each_kill": log.rss_before_kills,
        "rss_mib_at_end": final_rss,
        "rss_mib_every_10s": rss_samples,
    });
    // The servers are gone: the proxy may stop and the mount go before its directory does.
    drop((proxy, disk));
    database.remove().await;
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if report["violations"]
        .as_array()
        .is_some_and(|v| !v.is_empty())
    {
        return Err(format!(
            "the soak found {} violations",
            report["violations"].as_array().map_or(0, Vec::len)
        ));
    }
    Ok(report)
}

/// A TCP proxy between the server and PostgreSQL that can take the database away: a cut drops
/// every open connection and refuses new ones until the database is given back.
struct DatabaseProxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl DatabaseProxy {
    async fn start(upstream: String) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (accepting, watching) = (up.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the database is away
                }
                let upstream = upstream.clone();
                let mut cut = watching.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self { port, up, cuts })
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db` with `host:port` replaced; the `host:port` it had.
fn through_proxy(url: &str, port: u16) -> Option<(String, String)> {
    let (scheme_user, rest) = url.split_once('@')?;
    let (authority, path) = rest.split_once('/')?;
    Some((
        format!("{scheme_user}@127.0.0.1:{port}/{path}"),
        authority.to_string(),
    ))
}

/// The database's directory as a file system of its own (tmpfs) that can be made full and
/// freed: SQLite then fails its writes with "database or disk is full", as on a real disk. It
/// is mounted with a large limit (tmpfs takes memory only for what it holds); to fill it, the
/// limit is cut to what it holds, so no filler file takes memory. Unmounted when dropped.
struct DiskFiller {
    dir: PathBuf,
}

impl DiskFiller {
    const ROOMY: &'static str = "size=64g";

    fn mount(dir: &Path) -> Result<Self, String> {
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("{},mode=0700", Self::ROOMY)])
            .arg("mfagate-soak")
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mounting a tmpfs on {} failed (it needs root): {}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, size: &str) -> Result<(), String> {
        let output = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{size}")])
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    /// Cuts the file system's limit to what it holds: the next page SQLite writes finds no
    /// room. Answers the bytes held.
    fn fill(&self) -> Result<u64, String> {
        // The server writes on meanwhile; a limit under what is held is refused, so try again.
        let mut last = String::new();
        for _ in 0..20 {
            let used = self.used()?;
            match self.remount(&format!("size={used}")) {
                Ok(()) => return Ok(used),
                Err(error) => last = error,
            }
        }
        Err(format!("cannot cut the tmpfs to what it holds: {last}"))
    }

    fn used(&self) -> Result<u64, String> {
        let output = std::process::Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("cannot run df: {e}"))?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| "df did not say what the tmpfs holds".to_string())
    }

    fn free(&self) -> Result<(), String> {
        self.remount(Self::ROOMY)
    }
}

impl Drop for DiskFiller {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.dir)
            .status();
    }
}
