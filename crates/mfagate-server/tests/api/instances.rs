//! Several server processes on one PostgreSQL database, and a database that goes away and comes
//! back. These tests need PostgreSQL (`MFAGATE_TEST_POSTGRES_URL`) whatever the run's backend.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::backend::PgDatabase;
use crate::helpers::{code, current_step, spawn_app_with, PASSWORD};

/// One `mfagate serve` process.
pub struct Instance {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Instance {
    pub async fn start(database_url: &str, secret_hex: &str, extra: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_mfagate"))
            .arg("serve")
            .env("MFAGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("MFAGATE_DATABASE_URL", database_url)
            .env("MFAGATE_SECRET_KEY", secret_hex)
            .env("MFAGATE_ARGON2_MEMORY_KIB", "8")
            .env("MFAGATE_ARGON2_ITERATIONS", "1")
            .env("MFAGATE_IP_THROTTLE", "off")
            .env("MFAGATE_HASH_QUEUE_PER_IP", "1024")
            .env("RUST_LOG", "warn")
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mfagate serve starts");
        let instance = Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        for _ in 0..100 {
            if let Ok(r) = instance
                .client
                .get(format!("{}/healthz", instance.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return instance;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("instance on port {port} did not become healthy");
    }

    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or_default(),
        )
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or_default(),
        )
    }

    /// Registers `username` (an address at example.com, `PASSWORD`); the 201 answer.
    pub async fn register(&self, username: &str) -> serde_json::Value {
        let (status, registered) = self
            .post(
                "/auth/register",
                json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(status, 201, "{registered}");
        registered
    }

    pub async fn login(&self, username: &str) -> serde_json::Value {
        self.post(
            "/auth/login",
            json!({"username": username, "password": PASSWORD}),
            None,
        )
        .await
        .1
    }
}

/// Two instances, A and B, on one fresh database.
async fn two_instances(extra: &[(&str, &str)]) -> (PgDatabase, Instance, Instance) {
    let database = PgDatabase::create().await;
    let secret = mfagate::SecretBytes::generate(32).to_hex();
    // Started together: migrations and the first signing key must be agreed on once.
    let (a, b) = tokio::join!(
        Instance::start(&database.url, &secret, extra),
        Instance::start(&database.url, &secret, extra)
    );
    (database, a, b)
}

/// Registers on A and enrols TOTP on B; returns (secret, recovery codes, step used).
async fn enrolled_user(a: &Instance, b: &Instance, username: &str) -> (Vec<u8>, Vec<String>, i64) {
    let (status, registered) = a
        .post("/auth/register", json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}), None)
        .await;
    assert_eq!(status, 201, "{registered}");
    let access = registered["access"].as_str().unwrap();
    let (_, begun) = b.get("/auth/mfa/totp/activate", Some(access)).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let step = crate::helpers::fresh_step() - 1;
    let (status, activated) = b
        .post(
            "/auth/mfa/totp/activate",
            json!({"activation_token": begun["activation_token"], "code": code(&secret, step)}),
            Some(access),
        )
        .await;
    assert_eq!(status, 200, "{activated}");
    let codes = serde_json::from_value(activated["recovery_codes"].clone()).unwrap();
    (secret, codes, step)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_login_begun_on_one_instance_finishes_on_another_and_steps_replay_nowhere_on_postgres() {
    let (_db, a, b) = two_instances(&[]).await;
    let (secret, _, step) = enrolled_user(&a, &b, "ann").await;
    let challenge = a.login("ann").await;
    let ephemeral = challenge["ephemeral_token"].as_str().unwrap();
    let (status, tokens) = b
        .post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": ephemeral, "code": code(&secret, step + 1)}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    // The step B accepted is refused on A, and so is the one used at activation.
    let again = a.login("ann").await;
    for used in [step, step + 1] {
        let (status, body) = a
            .post(
                "/auth/mfa/verify",
                json!({"ephemeral_token": again["ephemeral_token"], "code": code(&secret, used)}),
                None,
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_code");
    }
    assert!(current_step() <= step + 2);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn of_concurrent_uses_of_one_recovery_code_on_two_instances_exactly_one_wins_on_postgres() {
    let (_db, a, b) = two_instances(&[
        ("MFAGATE_MFA_MAX_CHALLENGES", "100"),
        ("MFAGATE_MFA_USER_FAILURES", "100/900"),
    ])
    .await;
    let (_, codes, _) = enrolled_user(&a, &b, "ann").await;
    for code in codes.iter().take(8) {
        let mut challenges = Vec::new();
        for instance in [&a, &b, &a, &b] {
            challenges.push((
                instance,
                instance.login("ann").await["ephemeral_token"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
        let attempts = challenges.iter().map(|(instance, ephemeral)| {
            instance.post(
                "/auth/mfa/verify",
                json!({"ephemeral_token": ephemeral, "code": code}),
                None,
            )
        });
        let answers = futures::future::join_all(attempts).await;
        let winners = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(winners, 1, "one winner per code: {answers:?}");
        assert!(answers
            .iter()
            .all(|(status, body)| *status == 200 || body["error"] == "invalid_code"));
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn refresh_rotated_on_one_instance_and_reused_on_another_revokes_the_family_on_postgres() {
    let (_db, a, b) = two_instances(&[]).await;
    let (_, registered) = a
        .post(
            "/auth/register",
            json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let first = registered["refresh"].as_str().unwrap();
    let (status, rotated) = a
        .post("/auth/token/refresh", json!({"refresh": first}), None)
        .await;
    assert_eq!(status, 200);
    let (status, reused) = b
        .post("/auth/token/refresh", json!({"refresh": first}), None)
        .await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, _) = a
        .post(
            "/auth/token/refresh",
            json!({"refresh": rotated["refresh"]}),
            None,
        )
        .await;
    assert_eq!(status, 401, "the family is revoked everywhere");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn failed_logins_are_counted_across_instances_on_postgres() {
    let (_db, a, b) = two_instances(&[("MFAGATE_LOGIN_THROTTLE", "3/300")]).await;
    a.post(
        "/auth/register",
        json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD}),
        None,
    )
    .await;
    for instance in [&a, &b, &a] {
        let (status, _) = instance
            .post(
                "/auth/login",
                json!({"username": "ann", "password": "wrong"}),
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = b
        .post(
            "/auth/login",
            json!({"username": "ann", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (429, Some("throttled")));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn eddsa_instances_started_together_share_one_key_on_postgres() {
    let (_db, a, b) = two_instances(&[("MFAGATE_JWT_ALGORITHM", "EdDSA")]).await;
    let (_, registered) = a
        .post(
            "/auth/register",
            json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let token = registered["access"].as_str().unwrap();
    let (status, _) = b.get("/auth/user", Some(token)).await;
    assert_eq!(status, 200);
    let (_, jwks_a) = a.get("/.well-known/jwks.json", None).await;
    let (_, jwks_b) = b.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks_a, jwks_b);
    assert_eq!(jwks_a["keys"].as_array().unwrap().len(), 1);
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore: the database "goes
/// away" for this server only, without disturbing anything else using PostgreSQL.
struct Cuttable {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Cuttable {
    async fn start(upstream: String) -> Cuttable {
        let port = free_port();
        let proxy = Cuttable {
            port,
            upstream,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.restore().await;
        proxy
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy port");
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(acceptor);
    }

    /// Closes every connection and stops listening: clients see the database as down.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn while_the_database_is_away_answers_are_503_and_the_server_recovers_by_itself_on_postgres()
{
    let database = PgDatabase::create().await;
    let url = reqwest::Url::parse(&database.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Cuttable::start(upstream).await;
    let mut through_proxy = url.clone();
    through_proxy.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(|s| {
        s.database_url = through_proxy.to_string();
        s.secret_key = Some(mfagate::SecretBytes::generate(32));
    })
    .await;

    // Light load: registrations in a loop, remembering which ones the server accepted.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let load = {
        let (client, base, accepted, statuses) = (
            app.client.clone(),
            app.addr.clone(),
            accepted.clone(),
            statuses.clone(),
        );
        tokio::spawn(async move {
            for i in 0..120 {
                let name = format!("user{i}");
                let response = client
                    .post(format!("{base}/auth/register"))
                    .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                statuses.lock().unwrap().push(status);
                if status == 201 {
                    accepted.lock().unwrap().push(name);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, 503, "{}", health.body);
    app.login("nobody").await.assert_error(503, "unavailable");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    proxy.restore().await;
    load.await.unwrap();

    // Back by itself, without a restart.
    let mut healthy = false;
    for _ in 0..50 {
        if app.get("/healthz", None).await.status == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the server recovers once the database is back");
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "only successes and 503s: {statuses:?}"
    );
    assert!(statuses.contains(&503), "the outage was seen: {statuses:?}");
    assert_eq!(
        statuses.last(),
        Some(&201),
        "registrations succeed again: {statuses:?}"
    );
    // No accepted write is lost.
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() > 10);
    for name in accepted {
        assert_eq!(
            app.login(&name).await.status,
            200,
            "{name} was accepted, so it must exist"
        );
    }
}

/// Bursts split over two instances: `requests` alternate between A and B.
async fn split_burst(
    a: &Instance,
    b: &Instance,
    requests: Vec<crate::limits::Request>,
) -> Vec<crate::limits::Burst> {
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    for (i, request) in requests.into_iter().enumerate() {
        if i % 2 == 0 {
            on_a.push(request);
        } else {
            on_b.push(request);
        }
    }
    let (mut first, second) = tokio::join!(
        crate::limits::burst(&a.base, on_a),
        crate::limits::burst(&b.base, on_b)
    );
    first.extend(second);
    first
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_burst_of_wrong_passwords_over_two_instances_gets_at_most_the_limit_checked_on_postgres()
{
    let (_db, a, b) = two_instances(&[("MFAGATE_LOGIN_THROTTLE", "10/300")]).await;
    let (status, _) = a
        .post(
            "/auth/register",
            json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let mut requests: Vec<crate::limits::Request> = (0..99)
        .map(|_| {
            (
                "/auth/login".to_string(),
                json!({"username": "ann", "password": "wrong"}),
                vec![],
            )
        })
        .collect();
    requests.insert(
        95,
        (
            "/auth/login".into(),
            json!({"username": "ann", "password": PASSWORD}),
            vec![],
        ),
    );
    let answers = split_burst(&a, &b, requests).await;
    // At most 10 wrong passwords are checked; a right one that was checked handed its claim
    // back (see the single-instance test).
    let failed = answers.iter().filter(|x| x.status == 401).count();
    let won = answers.iter().filter(|x| x.status == 200).count();
    assert!(
        failed <= 10,
        "{failed} wrong passwords checked past a limit of 10"
    );
    assert!(won <= 1);
    assert_eq!(
        answers.iter().filter(|x| x.status == 429).count(),
        100 - failed - won
    );
    for _ in failed..10 {
        let (status, _) = a
            .post(
                "/auth/login",
                json!({"username": "ann", "password": "wrong"}),
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, _) = b
        .post(
            "/auth/login",
            json!({"username": "ann", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, 429);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_burst_of_wrong_codes_over_two_instances_gets_at_most_the_attempts_checked_on_postgres() {
    let (_db, a, b) = two_instances(&[]).await;
    let (secret, _, step) = enrolled_user(&a, &b, "ann").await;
    let ephemeral = a.login("ann").await["ephemeral_token"]
        .as_str()
        .unwrap()
        .to_string();
    let right = code(&secret, step + 1);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let answers = split_burst(
        &a,
        &b,
        (0..60)
            .map(|_| {
                (
                    "/auth/mfa/verify".to_string(),
                    json!({"ephemeral_token": ephemeral, "code": wrong}),
                    vec![],
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(
        answers.iter().filter(|x| x.error == "invalid_code").count(),
        5
    );
    assert_eq!(
        answers
            .iter()
            .filter(|x| x.error == "too_many_attempts")
            .count(),
        55
    );
    let (status, body) = b
        .post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": ephemeral, "code": right}),
            None,
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_attempts");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn the_per_ip_limit_holds_for_two_instances_together_on_postgres() {
    let (_db, a, b) = two_instances(&[
        ("MFAGATE_IP_THROTTLE", "5/60"),
        ("MFAGATE_LOGIN_THROTTLE", "off"),
    ])
    .await;
    let attempt = |name: String| {
        (
            "/auth/login".to_string(),
            json!({"username": name, "password": "wrong"}),
            vec![],
        )
    };
    // Three requests on A and two on B use the whole budget of the address: each instance has
    // seen fewer than five, and still the sixth, on either, is refused.
    for i in 0..5 {
        let instance = if i < 3 { &a } else { &b };
        let (status, body) = instance
            .post(
                "/auth/login",
                json!({"username": format!("nobody{i}"), "password": "wrong"}),
                None,
            )
            .await;
        assert_eq!(status, 401, "request {i}: {body}");
    }
    for instance in [&a, &b] {
        let (status, body) = instance
            .post(
                "/auth/login",
                json!({"username": "nobody", "password": "wrong"}),
                None,
            )
            .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"], "throttled");
    }

    // A burst split over both instances of a new deployment at once.
    let (_db, a, b) = two_instances(&[
        ("MFAGATE_IP_THROTTLE", "5/60"),
        ("MFAGATE_LOGIN_THROTTLE", "off"),
    ])
    .await;
    let answers = split_burst(
        &a,
        &b,
        (0..40).map(|i| attempt(format!("nobody{i}"))).collect(),
    )
    .await;
    assert_eq!(
        answers.iter().filter(|x| x.status == 401).count(),
        5,
        "exactly the limit is let through by both instances together"
    );
    assert_eq!(
        answers.iter().filter(|x| x.error == "throttled").count(),
        35
    );
}

/// A factor enrolled through `POST /auth/mfa/factors` on `on`; returns (id, secret, answer).
async fn enrol_factor(
    on: &Instance,
    access: &str,
    name: &str,
    step: i64,
) -> (String, Vec<u8>, serde_json::Value) {
    let (status, begun) = on
        .post(
            "/auth/mfa/factors",
            json!({"kind": "totp", "name": name}),
            Some(access),
        )
        .await;
    assert_eq!(status, 201, "{begun}");
    let id = begun["factor"]["id"].as_str().unwrap().to_string();
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let (status, verified) = on
        .post(
            &format!("/auth/mfa/factors/{id}/verify"),
            json!({"code": code(&secret, step)}),
            Some(access),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    (id, secret, verified)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn each_factors_step_works_once_across_two_instances_on_postgres() {
    let (_db, a, b) = two_instances(&[("MFAGATE_MFA_MAX_CHALLENGES", "100")]).await;
    let registered = a.register("ann").await;
    let step = crate::helpers::fresh_step() - 1;
    // One factor enrolled on each instance; the second needs the first's fresh session.
    let (_, phone, verified) =
        enrol_factor(&b, registered["access"].as_str().unwrap(), "Phone", step).await;
    let (_, tablet, _) =
        enrol_factor(&a, verified["access"].as_str().unwrap(), "Tablet", step).await;
    // Six challenges over both instances; four race with the phone's next code, two with the
    // tablet's code of the same step.
    let mut attempts = Vec::new();
    for (n, instance) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let ephemeral = instance.login("ann").await["ephemeral_token"]
            .as_str()
            .unwrap()
            .to_string();
        let secret = if n < 4 { &phone } else { &tablet };
        attempts.push((instance, ephemeral, code(secret, step + 1)));
    }
    let answers = futures::future::join_all(attempts.iter().map(|(instance, ephemeral, code)| {
        instance.post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": ephemeral, "code": code}),
            None,
        )
    }))
    .await;
    let won = |range: std::ops::Range<usize>| {
        answers[range]
            .iter()
            .filter(|(status, _)| *status == 200)
            .count()
    };
    assert_eq!((won(0..4), won(4..6)), (1, 1), "{answers:?}");
    assert!(answers
        .iter()
        .all(|(status, body)| *status == 200 || body["error"] == "invalid_code"));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn passkey_ceremonies_begun_on_one_instance_finish_on_the_other_once_on_postgres() {
    let (_db, a, b) = two_instances(&[]).await;
    let mut key = crate::passkeys::new_key();
    let registered = a.register("ann").await;
    let access = registered["access"].as_str().unwrap();
    // Enrolment begun on A, finished on B.
    let (status, begun) = a
        .post(
            "/auth/mfa/factors",
            json!({"kind": "webauthn", "name": "Key"}),
            Some(access),
        )
        .await;
    assert_eq!(status, 201, "{begun}");
    let id = begun["factor"]["id"].as_str().unwrap();
    let credential = key.register(&begun["options"]);
    let (status, verified) = b
        .post(
            &format!("/auth/mfa/factors/{id}/verify"),
            json!({ "credential": credential }),
            Some(access),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    // The ceremony answered once: the same answer on A finds nothing.
    let (status, _) = a
        .post(
            &format!("/auth/mfa/factors/{id}/verify"),
            json!({ "credential": credential }),
            Some(verified["access"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 404);

    // A challenge from A answered on B.
    let challenge = a.login("ann").await;
    let assertion = key.assert(&challenge["webauthn"]);
    let (status, tokens) = b
        .post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": challenge["ephemeral_token"], "credential": assertion}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{tokens}");

    // A passwordless login begun on B, finished on both at once: exactly one wins.
    let (status, begun) = b.post("/auth/passkey/begin", json!({}), None).await;
    assert_eq!(status, 200, "{begun}");
    let body = json!({"passkey_token": begun["passkey_token"], "credential": key.assert(&begun["options"])});
    let answers = futures::future::join_all((0..8).map(|i| {
        let instance = if i % 2 == 0 { &a } else { &b };
        instance.post("/auth/passkey/finish", body.clone(), None)
    }))
    .await;
    let won: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|(status, body)| *status == 200 || body["error"] == "invalid_token"));
}
