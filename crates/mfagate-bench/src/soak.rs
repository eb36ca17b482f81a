//! The soak (`--soak MINUTES`): mixed traffic for as long as asked against the server on a
//! fresh database, while the server is killed with SIGKILL at random moments and restarted on
//! the same database (on PostgreSQL every other fault is the database going away for a few
//! seconds through a proxy, and the server must recover without a restart). As the traffic runs, each worker checks from the client side what must
//! never happen: a recovery code or a TOTP step accepted twice, a rotated refresh token taken
//! again, a 5xx other than `503`. At the end every answered registration, enrolment and
//! password change must still be in effect. The report goes to `bench/results/soak-KIND.json`.

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
    kills: AtomicU64,
    database_cuts: AtomicU64,
}

struct Shared {
    base: String,
    client: reqwest::Client,
    stop_at: Instant,
    counters: Counters,
    /// How many times each invariant was checked.
    checked: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    violations: Mutex<Vec<String>>,
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
    /// than `503` is a violation.
    async fn call(
        &self,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Option<(u16, Value)> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.base);
        let mut request = match &body {
            Some(body) => self.client.post(&url).json(body),
            None => self.client.get(&url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let Ok(response) = request.send().await else {
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
        None => account.passwords = vec![current, new],
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

pub async fn soak(
    binary: &std::path::Path,
    database: Database,
    url: String,
    minutes: f64,
    kind: &str,
) -> Result<Value, String> {
    let port = free_port();
    let secret = SecretBytes::generate(32);
    // On PostgreSQL the server reaches the database through a proxy that can cut it away.
    let (proxy, server_url) = if kind == "postgres" {
        let (_, upstream) = through_proxy(&url, 0).ok_or("cannot read the database URL")?;
        let proxy = DatabaseProxy::start(upstream).await?;
        let (proxied, _) = through_proxy(&url, proxy.port).ok_or("cannot read the database URL")?;
        (Some(Arc::new(proxy)), proxied)
    } else {
        (None, url.clone())
    };
    let env: Vec<(String, String)> = [
        ("MFAGATE_LISTEN", format!("127.0.0.1:{port}")),
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
    let server = Arc::new(tokio::sync::Mutex::new(Some(
        ServerProcess::spawn(binary, &["serve"], &env, port).await?,
    )));
    let shared = Arc::new(Shared {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?,
        stop_at: Instant::now() + Duration::from_secs_f64(minutes * 60.0),
        counters: Counters::default(),
        checked: Mutex::new(Default::default()),
        violations: Mutex::new(Vec::new()),
    });
    eprintln!("soak: {minutes} min on {kind}, killing the server at random moments");
    let began = Instant::now();

    // The killer: SIGKILL at a random moment (every 5 to 20 s in short runs; every 1 to 3
    // minutes in runs of 10 minutes or more, so that each server life is long enough to see its
    // memory settle), then start the server again on the same database.
    let between_kills = if minutes >= 10.0 {
        60.0..180.0
    } else {
        5.0..20.0
    };
    let killer = {
        let (server, shared, binary, env, proxy) = (
            server.clone(),
            shared.clone(),
            binary.to_path_buf(),
            env.clone(),
            proxy.clone(),
        );
        tokio::spawn(async move {
            let mut rss = Vec::new();
            let mut downtimes = Vec::new();
            loop {
                let wait = rand::thread_rng().gen_range(between_kills.clone());
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                if Instant::now() + Duration::from_secs(10) >= shared.stop_at {
                    return (rss, downtimes);
                }
                // On PostgreSQL every other fault is the database going away for 2 to 6 s:
                // the server answers 503 meanwhile and must recover without a restart.
                if let Some(proxy) = proxy.as_ref().filter(|_| rand::thread_rng().gen_bool(0.5)) {
                    proxy.cut();
                    shared
                        .counters
                        .database_cuts
                        .fetch_add(1, Ordering::Relaxed);
                    let away = rand::thread_rng().gen_range(2.0..6.0);
                    tokio::time::sleep(Duration::from_secs_f64(away)).await;
                    proxy.restore();
                    let back = Instant::now();
                    let mut recovered = false;
                    while back.elapsed() < Duration::from_secs(30) {
                        if let Some((200, _)) = shared.call("/healthz", None, None).await {
                            recovered = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    shared.check("recovery from a database outage without a restart", recovered, || {
                        "the server did not answer /healthz within 30 s of the database's return".into()
                    });
                    continue;
                }
                let mut guard = server.lock().await;
                if let Some(running) = guard.as_ref() {
                    rss.push(running.rss_mib());
                }
                *guard = None; // dropping it sends SIGKILL and reaps it
                shared.counters.kills.fetch_add(1, Ordering::Relaxed);
                let down = Instant::now();
                match ServerProcess::spawn(&binary, &["serve"], &env, port).await {
                    Ok(restarted) => *guard = Some(restarted),
                    Err(error) => {
                        shared.violation(format!("no recovery after a kill: {error}"));
                        return (rss, downtimes);
                    }
                }
                downtimes.push(down.elapsed().as_secs_f64());
            }
        })
    };
    // Resident memory every 10 s, whichever life of the server is running: a leak shows as
    // growth within a life that the next kill hides.
    let sampler = {
        let (server, shared) = (server.clone(), shared.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < shared.stop_at {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if let Some(running) = server.lock().await.as_ref() {
                    samples.push(json!([began.elapsed().as_secs(), running.rss_mib()]));
                }
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
    let (rss, downtimes) = killer.await.map_err(|e| e.to_string())?;
    let rss_samples = sampler.await.map_err(|e| e.to_string())?;
    final_checks(&shared, &accounts).await;
    let final_rss = server.lock().await.as_ref().map_or(0.0, |s| s.rss_mib());
    drop(server.lock().await.take());
    database.remove().await;

    let c = &shared.counters;
    let violations = shared
        .violations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let report = json!({
        "database": kind,
        "minutes": began.elapsed().as_secs_f64() / 60.0,
        "kills": c.kills.load(Ordering::Relaxed),
        "database_cuts": c.database_cuts.load(Ordering::Relaxed),
        "restart_seconds_max": downtimes.iter().cloned().fold(0.0, f64::max),
        "requests": c.requests.load(Ordering::Relaxed),
        "answered": c.answered.load(Ordering::Relaxed),
        "unavailable_503": c.unavailable.load(Ordering::Relaxed),
        "unreachable_during_kills": c.unreachable.load(Ordering::Relaxed),
        "accounts": accounts.len(),
        "invariant_checks": c.checks.load(Ordering::Relaxed),
        "invariant_checks_by_kind": shared.checked.lock().map(|m| json!(*m)).unwrap_or_default(),
        "violations": violations,
        "rss_mib_before_each_kill": rss,
        "rss_mib_at_end": final_rss,
        "rss_mib_every_10s": rss_samples,
    });
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
