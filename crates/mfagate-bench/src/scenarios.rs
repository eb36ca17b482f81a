//! The scenarios, each a function of one running deployment (a [`Target`]), so that a run can
//! take them in any order: one database after another (the plain suite), or the two sizes of a
//! `--scale` run in turn, scenario by scenario, so that both halves of a comparison are measured
//! minutes apart rather than half an hour apart on a machine whose speed drifts.
//!
//! What the scenarios share lives in the target: the seeded users, taken in order, each once,
//! by S7, S2 and the mixed load (S5 uses the last `seed::WITH_CODES`), and the S1 user.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mfagate_core::totp::{self, TotpParams};
use serde_json::{json, Value};

use crate::counters;
use crate::load::LevelResult;
use crate::seed::{self, SeededUser};
use crate::server::{free_port, ServerProcess};
use crate::{
    client, get, level, levels, now, passkeys, post, register, vacuum_after_cleanup,
    wait_for_cleanup, Deployment, Plan, PASSWORD,
};

/// The steady-state scenarios, in the order a suite runs them (after S7 and the clean-up).
pub const STEADY: [&str; 8] = ["S1", "S2", "S3", "S4", "S5", "S8", "S6", "mixed"];

/// What the scenarios measured on one deployment (one half of a `--scale` comparison).
pub struct Measured {
    /// Seeded accounts.
    pub seeded: usize,
    pub rss_idle: f64,
    /// Peak resident memory, read after S2.
    pub rss_peak: f64,
    /// By scenario name (`S0`, `S1`, ..., `mixed`, `S2p`).
    pub results: BTreeMap<&'static str, Vec<LevelResult>>,
    /// PostgreSQL's counters per operation, by scenario (see `counters`).
    pub counters: BTreeMap<&'static str, Value>,
}

/// One running deployment under measurement.
pub struct Target {
    pub deployment: Deployment,
    base: String,
    /// Seeded users the logins may take (the rest are S5's).
    usable: usize,
    next_user: Arc<AtomicUsize>,
    /// S1's user, registered once the clean-up is over.
    s1_token: Option<String>,
    pub measured: Measured,
}

impl Target {
    pub async fn new(deployment: Deployment, seeded: usize) -> Target {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_idle = deployment.server.rss_mib();
        Target {
            base: deployment.server.base.clone(),
            usable: deployment.users.len().saturating_sub(seed::WITH_CODES),
            deployment,
            next_user: Arc::new(AtomicUsize::new(0)),
            s1_token: None,
            measured: Measured {
                seeded,
                rss_idle,
                rss_peak: 0.0,
                results: BTreeMap::new(),
                counters: BTreeMap::new(),
            },
        }
    }

    /// S7: logins while the server's first clean-up works off the seeded backlog of expired
    /// and spent rows (a third of the sessions, a fifth of the recovery codes, the expired
    /// challenges and keys). Then waits until it is done, so the rest measure a steady state.
    pub async fn login_during_cleanup(
        &mut self,
        plan: &Plan,
        measure: bool,
        wait: bool,
    ) -> Result<(), String> {
        if measure {
            let before = counters::snapshot(&self.deployment.url).await;
            let s7 = self
                .mfa_logins("S7 MFA login during the clean-up", plan)
                .await;
            self.count("S7", before, &s7).await;
            self.measured.results.insert("S7", s7);
        }
        let waited = Instant::now();
        if wait {
            wait_for_cleanup(&self.deployment.url).await?;
            vacuum_after_cleanup(&self.deployment.url).await?;
        }
        // The clean-up rewrote pages all over the database: let them reach the disk before the
        // steady-state scenarios, or their fsyncs wait behind the kernel's writeback.
        let _ = std::process::Command::new("sync").status();
        eprintln!(
            "  the clean-up of the seeded backlog finished {:.1} s after S7",
            waited.elapsed().as_secs_f64()
        );
        let registered = register(&client(1), &self.base, "s1user").await?;
        self.s1_token = registered["access"].as_str().map(str::to_string);
        Ok(())
    }

    /// Runs one scenario of `STEADY` (or S0, the ceiling, which needs no deployment but is kept
    /// with the target's results so that each half of a comparison has its own).
    pub async fn run(
        &mut self,
        scenario: &'static str,
        plan: &Plan,
        binary: &std::path::Path,
    ) -> Result<(), String> {
        if scenario == "S0" {
            let s0 = ceiling(plan).await?;
            self.measured.results.insert(scenario, s0);
            return Ok(());
        }
        let before = counters::snapshot(&self.deployment.url).await;
        let results = match scenario {
            "S1" => self.protected(plan).await?,
            "S2" => {
                let s2 = self.mfa_logins("S2 MFA login", plan).await;
                self.measured.rss_peak = self.deployment.server.peak_rss_mib();
                s2
            }
            "S3" => self.enrolments(plan).await,
            "S4" => self.refreshes(plan).await?,
            "S5" => self.regenerations(plan).await?,
            "S6" => self.admin(plan, binary).await?,
            "S8" => passkeys::passkey_levels(plan, &self.base).await?,
            "mixed" => self.mixed(plan).await?,
            other => return Err(format!("no scenario {other}")),
        };
        self.count(scenario, before, &results).await;
        self.measured.results.insert(scenario, results);
        Ok(())
    }

    /// Keeps what PostgreSQL's counters grew by during a scenario, per operation.
    async fn count(
        &mut self,
        scenario: &'static str,
        before: Option<counters::Snapshot>,
        results: &[LevelResult],
    ) {
        let Some(before) = before else { return };
        // The scenario's last counts reach PostgreSQL's statistics a moment after it ends (the
        // snapshot before it needs no wait: the scenario before was counted after one).
        tokio::time::sleep(counters::SETTLE).await;
        let Some(after) = counters::snapshot(&self.deployment.url).await else {
            return;
        };
        let operations = results.iter().map(|l| l.operations).sum();
        let grown = counters::per_operation(&before, &after, operations);
        let server: serde_json::Map<String, Value> = grown
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "tables" && *k != "indexes")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        eprintln!(
            "  {scenario}: PostgreSQL per operation {}",
            Value::Object(server)
        );
        self.measured.counters.insert(scenario, grown);
    }

    /// Stops the server and removes its database; what was measured.
    pub async fn remove(self) -> Measured {
        eprintln!(
            "  seeded users taken by logins: {} of {}",
            self.next_user.load(Ordering::Relaxed).min(self.usable),
            self.usable
        );
        self.deployment.remove().await;
        self.measured
    }

    /// S2 and S7: login then TOTP for seeded users, each user once.
    async fn mfa_logins(&self, name: &str, plan: &Plan) -> Vec<LevelResult> {
        mfa_login_levels(
            name,
            plan,
            &self.base,
            self.deployment.users.clone(),
            self.next_user.clone(),
            self.usable,
        )
        .await
    }

    fn s1_token(&self) -> Result<String, String> {
        self.s1_token
            .clone()
            .ok_or_else(|| "S1's user is registered after the clean-up (S7)".to_string())
    }

    /// S1: a protected call with an access token.
    async fn protected(&self, plan: &Plan) -> Result<Vec<LevelResult>, String> {
        let token = self.s1_token()?;
        let base = &self.base;
        Ok(levels("S1 protected", plan, |c| {
            let (client, url, token) = (client(c), format!("{base}/auth/user"), token.clone());
            Arc::new(move |_: usize, _: u64| {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                async move { get(&client, url, Some(&token)).await.map(|_| true) }
            })
        })
        .await)
    }

    /// S3: registration and TOTP enrolment.
    async fn enrolments(&self, plan: &Plan) -> Vec<LevelResult> {
        let level_tag = AtomicUsize::new(0);
        let base = &self.base;
        levels("S3 enrolment", plan, |c| {
            let tag = level_tag.fetch_add(1, Ordering::Relaxed);
            let (client, base) = (client(c), base.clone());
            Arc::new(move |worker: usize, iteration: u64| {
                let (client, base) = (client.clone(), base.clone());
                async move { enrolment(&client, &base, &format!("e{tag}w{worker}i{iteration}")).await }
            })
        })
        .await
    }

    /// S4: refresh-token rotation, one chain per worker.
    async fn refreshes(&self, plan: &Plan) -> Result<Vec<LevelResult>, String> {
        let mut s4 = Vec::new();
        for &concurrency in &plan.levels {
            let client = client(concurrency);
            let chains = refresh_chains(
                &client,
                &self.base,
                &format!("s4c{concurrency}"),
                concurrency,
            )
            .await?;
            let url = format!("{}/auth/token/refresh", self.base);
            let op = Arc::new(move |worker: usize, _: u64| {
                let (client, url, chains) = (client.clone(), url.clone(), chains.clone());
                async move { refresh_once(&client, &url, &chains[worker]).await }
            });
            s4.push(level("S4 refresh", concurrency, plan, op).await);
        }
        Ok(s4)
    }

    /// S5: recovery-code regeneration, each worker on a seeded user of its own, each call
    /// spending one code of the set the call before gave.
    async fn regenerations(&self, plan: &Plan) -> Result<Vec<LevelResult>, String> {
        let mut s5 = Vec::new();
        let users = &self.deployment.users;
        for &concurrency in &plan.levels {
            let client = client(concurrency);
            let mut chains = Vec::new();
            for (worker, user) in users[self.usable..].iter().take(concurrency).enumerate() {
                let access = mfa_token(&client, &self.base, user)
                    .await
                    .map_err(|e| format!("S5 worker {worker}: {e}"))?;
                chains.push(tokio::sync::Mutex::new(CodeChain {
                    access,
                    codes: user.codes.clone(),
                }));
            }
            let chains = Arc::new(chains);
            let url = format!("{}/auth/mfa/recovery-codes/regenerate", self.base);
            let op = Arc::new(move |worker: usize, _: u64| {
                let (client, url, chains) = (client.clone(), url.clone(), chains.clone());
                async move {
                    let Some(chain) = chains.get(worker) else {
                        return Ok(false);
                    };
                    let mut chain = chain.lock().await;
                    let code = chain.codes.pop().ok_or("no code left")?;
                    let answer =
                        post(&client, url, json!({"code": code}), Some(&chain.access)).await?;
                    chain.codes = answer["recovery_codes"]
                        .as_array()
                        .ok_or("no codes in the answer")?
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect();
                    Ok(true)
                }
            });
            s5.push(level("S5 regenerate", concurrency, plan, op).await);
        }
        Ok(s5)
    }

    /// S6: an administrator pages through the user list and reads users' audit trails.
    async fn admin(
        &self,
        plan: &Plan,
        binary: &std::path::Path,
    ) -> Result<Vec<LevelResult>, String> {
        let setup = client(1);
        let base = &self.base;
        let admin_name = "benchadmin";
        register(&setup, base, admin_name).await?;
        let status = std::process::Command::new(binary)
            .args(["user", "set-admin", admin_name])
            .envs(self.deployment.env.iter().cloned())
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
        let ids: Arc<Vec<String>> =
            Arc::new(self.deployment.users.iter().map(|u| u.id.clone()).collect());
        let mut s6 = Vec::new();
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
            s6.push(level("S6 admin list + audit", concurrency, plan, op).await);
        }
        Ok(s6)
    }

    /// Mixed: logins with TOTP, refreshes, enrolments and protected calls at once, so a slow
    /// write is felt by every call queued behind it.
    async fn mixed(&self, plan: &Plan) -> Result<Vec<LevelResult>, String> {
        let token = self.s1_token()?;
        let usable = self.usable;
        let mut mixed = Vec::new();
        for &concurrency in &plan.levels {
            let client = client(concurrency);
            let chains = refresh_chains(
                &client,
                &self.base,
                &format!("mx{concurrency}"),
                concurrency,
            )
            .await?;
            let (base, token, logins, next_user) = (
                self.base.clone(),
                token.clone(),
                self.deployment.users.clone(),
                self.next_user.clone(),
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
            mixed.push(level("mixed", concurrency, plan, op).await);
        }
        Ok(mixed)
    }
}

/// S0: the ceiling, a bare axum server of this binary's own, driven by the same client.
pub async fn ceiling(plan: &Plan) -> Result<Vec<LevelResult>, String> {
    let port = free_port();
    let self_exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bare =
        ServerProcess::spawn(&self_exe, &["--bare-server", &port.to_string()], &[], port).await?;
    let base = bare.base.clone();
    Ok(levels("S0 ceiling", plan, |c| {
        let (client, url) = (client(c), format!("{base}/ceiling"));
        Arc::new(move |_: usize, _: u64| {
            let (client, url) = (client.clone(), url.clone());
            async move { get(&client, url, None).await.map(|_| true) }
        })
    })
    .await)
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

/// S2, S7 and S2p: login then TOTP for seeded users, each user once.
pub async fn mfa_login_levels(
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
    let registered = register(client, base, name).await?;
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
        let registered = register(client, base, &name).await?;
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
