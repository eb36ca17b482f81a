//! `spawn_app()`: the real server on a random port over a fresh SQLite file, spoken to over HTTP.

use std::path::PathBuf;
use std::sync::{Arc, Once};

use mfagate::core::clock::MovableClock;
use mfagate::core::totp::{self, TotpParams};
use mfagate_server::settings::Redacted;
use mfagate_server::{Application, Settings};

use crate::backend::{postgres_selected, PgDatabase};
use crate::smtp::MailBox;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery";

static TRACING: Once = Once::new();

/// Logs stay quiet unless TEST_LOG is set.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("debug,sqlx=warn,hyper=info")
                .init();
        }
    });
}

pub struct TestApp {
    pub addr: String,
    /// `http://HOST:PORT` of `GET /metrics`, when the test set `metrics_listen`.
    pub metrics: Option<String>,
    /// The server's clock: `advance` it instead of sleeping until something expires.
    pub clock: MovableClock,
    /// Every message the server sent.
    pub mail: MailBox,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    pub settings: Settings,
    /// The PostgreSQL database of this test, dropped with the app.
    pub pg: Option<Arc<PgDatabase>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = Settings::for_tests(dir.path());
    let pg = if postgres_selected() {
        let database = PgDatabase::create().await;
        settings.database_url = database.url.clone();
        settings.secret_key = Some(mfagate::SecretBytes::generate(32));
        Some(Arc::new(database))
    } else {
        None
    };
    let clock = MovableClock::new();
    settings.gate.clock = Arc::new(clock.clone());
    let mail = MailBox::default();
    let smtp_port = mail.listen(0).await;
    settings.smtp_url = Some(Redacted(format!("smtp://127.0.0.1:{smtp_port}")));
    // Security notices are on by default; the tests that count a user's mail would see them
    // arrive between the messages they wait for, so they are off here and switched on by the
    // tests of the notices themselves (security_emails.rs).
    settings.config.security_emails = false;
    configure(&mut settings);
    start(dir, settings, mail, pg, clock).await
}

async fn start(
    dir: Arc<tempfile::TempDir>,
    settings: Settings,
    mail: MailBox,
    pg: Option<Arc<PgDatabase>>,
    clock: MovableClock,
) -> TestApp {
    init_tracing();
    let app = Application::build(settings.clone())
        .await
        .expect("server builds");
    let addr = format!("http://{}", app.local_addr().expect("bound"));
    let metrics = app.metrics_addr().map(|a| format!("http://{a}"));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        addr,
        metrics,
        clock,
        mail,
        client: reqwest::Client::new(),
        dir,
        settings,
        pg,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A parsed response: status, headers and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        Self {
            status,
            headers,
            body,
        }
    }

    /// Asserts the contract's error shape and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["error"], code, "body: {}", self.body);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "detail missing: {}",
            self.body
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What `enable_totp` leaves behind.
pub struct Enrolled {
    pub secret: Vec<u8>,
    pub recovery_codes: Vec<String>,
    /// The step the activation used; later codes must use later steps.
    pub step: i64,
    /// The new session enrolment opened (amr `pwd mfa otp`): sessions that began without a
    /// second factor, the caller's included, ended with the enrolment.
    pub access: String,
    pub refresh: Option<String>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    /// Any method, with an optional JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    /// The status of a GET, whatever its body.
    pub async fn get_status(&self, path: &str) -> u16 {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    pub async fn raw(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::from(request.send().await.expect("request")).await
    }

    /// Registers `username` with `PASSWORD` and an address at example.com.
    pub async fn register(&self, username: &str) -> Answer {
        self.post(
            "/auth/register",
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            None,
        )
        .await
    }

    pub async fn login(&self, username: &str) -> Answer {
        self.login_with(username, PASSWORD).await
    }

    pub async fn login_with(&self, username: &str, password: &str) -> Answer {
        self.post(
            "/auth/login",
            json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    /// Registers and returns the access token (optional mode).
    pub async fn register_and_token(&self, username: &str) -> String {
        let answer = self.register(username).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["access"]
            .as_str()
            .expect("access token")
            .to_string()
    }

    /// Enrols TOTP with `token` (an access or setup token), with a code for the current step.
    pub async fn enable_totp_with(&self, token: &str) -> (Enrolled, Answer) {
        let begun = self.get("/auth/mfa/totp/activate", Some(token)).await;
        assert_eq!(begun.status, 200, "{}", begun.body);
        let secret = data_encoding::BASE32_NOPAD
            .decode(begun.body["secret"].as_str().expect("secret").as_bytes())
            .expect("base32 secret");
        // One step back: the test then has `step + 1` and `step + 2` for later uses, both inside
        // the ±1 window for the rest of this step.
        let step = fresh_step() - 1;
        let answer = self
            .post(
                "/auth/mfa/totp/activate",
                json!({"activation_token": begun.body["activation_token"], "code": code(&secret, step)}),
                Some(token),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let recovery_codes = answer.body["recovery_codes"]
            .as_array()
            .expect("recovery codes")
            .iter()
            .map(|c| c.as_str().expect("code").to_string())
            .collect();
        let access = answer.body["access"]
            .as_str()
            .expect("activation carries a token pair")
            .to_string();
        let refresh = answer.body["refresh"].as_str().map(str::to_string);
        (
            Enrolled {
                secret,
                recovery_codes,
                step,
                access,
                refresh,
            },
            answer,
        )
    }

    pub async fn enable_totp(&self, access: &str) -> Enrolled {
        self.enable_totp_with(access).await.0
    }

    /// Registers a user with TOTP on; returns what was enrolled.
    pub async fn user_with_totp(&self, username: &str) -> Enrolled {
        let access = self.register_and_token(username).await;
        self.enable_totp(&access).await
    }

    /// Logs in and returns the ephemeral token of the challenge.
    pub async fn challenge(&self, username: &str) -> String {
        let answer = self.login(username).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["mfa_required"], true, "{}", answer.body);
        answer.body["ephemeral_token"]
            .as_str()
            .expect("ephemeral token")
            .to_string()
    }

    pub async fn verify(&self, ephemeral: &str, code: &str) -> Answer {
        self.post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": ephemeral, "code": code}),
            None,
        )
        .await
    }

    pub fn database_files(&self) -> Vec<PathBuf> {
        ["mfagate.db", "mfagate.db-wal", "mfagate.db-shm"]
            .iter()
            .map(|name| self.dir.path().join(name))
            .filter(|path| path.exists())
            .collect()
    }

    /// Everything the database holds, as bytes to search: the SQLite files (WAL included), or
    /// every PostgreSQL row as JSON text.
    pub async fn database_contents(&self) -> Vec<u8> {
        if self.pg.is_none() {
            return self
                .database_files()
                .iter()
                .flat_map(|f| std::fs::read(f).unwrap())
                .collect();
        }
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&self.settings.database_url)
            .await
            .unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::TEXT FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let mut out = Vec::new();
        for table in tables {
            for row in sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT row_to_json(t)::TEXT AS j FROM {table} t"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            {
                out.extend_from_slice(row.get::<String, _>("j").as_bytes());
            }
        }
        out
    }

    /// The root secret the server runs with: configured, or generated into the key file.
    pub fn root_secret(&self) -> mfagate::SecretBytes {
        self.settings.secret_key.clone().unwrap_or_else(|| {
            let text = std::fs::read_to_string(self.dir.path().join("mfagate.key")).unwrap();
            mfagate::SecretBytes::parse(&text).unwrap()
        })
    }

    /// Environment for running the `mfagate` binary against this app's database.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "MFAGATE_DATABASE_URL".to_string(),
            self.settings.database_url.clone(),
        )];
        if let Some(secret) = &self.settings.secret_key {
            env.push(("MFAGATE_SECRET_KEY".to_string(), secret.to_hex()));
        }
        env
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server stopped cleanly");
        }
    }

    /// Stops this server and starts another on the same database and key file.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        self.stop().await;
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".into();
        configure(&mut settings);
        start(
            self.dir.clone(),
            settings,
            self.mail.clone(),
            self.pg.clone(),
            self.clock.clone(),
        )
        .await
    }
}

/// A TOTP code for `step` with the default parameters.
pub fn code(secret: &[u8], step: i64) -> String {
    totp::code_for_step(secret, step, &TotpParams::default())
}

pub fn now() -> i64 {
    mfagate::gate::unix_now()
}

pub fn current_step() -> i64 {
    totp::step_at(now(), 30)
}

/// The current step, after waiting out the last seconds of a step, so that a test using steps
/// `s`, `s + 1` never sees `s` fall out of the ±1 window.
pub fn fresh_step() -> i64 {
    let into_step = now().rem_euclid(30);
    if into_step >= 25 {
        std::thread::sleep(std::time::Duration::from_secs((30 - into_step + 1) as u64));
    }
    current_step()
}

/// The claims of a JWT, decoded without verifying (the tests check what the server put in).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub fn amr(token: &str) -> Vec<String> {
    jwt_claims(token)["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

impl TestApp {
    /// Creates an administrator directly through the service, as `mfagate user create --admin`
    /// does, and logs them in.
    pub async fn admin_token(&self, username: &str) -> String {
        self.create_admin(username).await;
        let answer = self.login(username).await;
        answer.body["access"]
            .as_str()
            .expect("admin token")
            .to_string()
    }

    async fn create_admin(&self, username: &str) {
        let gatekeeper = mfagate_server::startup::gatekeeper(&self.settings)
            .await
            .expect("service");
        let ctx = mfagate::core::Context {
            now: now(),
            ip: None,
            user_agent: Default::default(),
        };
        gatekeeper
            .create_user(
                username,
                &format!("{username}@example.com"),
                PASSWORD,
                true,
                &ctx,
            )
            .await
            .expect("admin created");
    }

    /// Verifies the user's address through the mailed key (logged-in variant).
    pub async fn verify_email_of(&self, username: &str, access: &str) {
        let before = self.mail.to(&format!("{username}@example.com")).len();
        let answer = self
            .post(
                "/auth/register/resend-verification",
                json!({}),
                Some(access),
            )
            .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        let mail = self
            .mail
            .wait_for(&format!("{username}@example.com"), before + 1)
            .await;
        let verified = self
            .post(
                "/auth/register/verify-email",
                json!({"key": mail.key()}),
                None,
            )
            .await;
        assert_eq!(verified.status, 200, "{}", verified.body);
    }

    /// A registered user with a verified address and e-mailed codes switched on.
    pub async fn user_with_email_codes(&self, username: &str) -> String {
        let access = self.register_and_token(username).await;
        self.verify_email_of(username, &access).await;
        let chosen = self
            .post(
                "/auth/mfa/method",
                json!({"method": "email"}),
                Some(&access),
            )
            .await;
        assert_eq!(chosen.status, 200, "{}", chosen.body);
        access
    }
}

impl TestApp {
    /// In `required` mode: an administrator who enrolled TOTP through their setup token.
    pub async fn admin_token_required(&self, username: &str) -> String {
        self.create_admin(username).await;
        let setup = self.login(username).await.body["setup_token"]
            .as_str()
            .expect("setup token")
            .to_string();
        let (_, activated) = self.enable_totp_with(&setup).await;
        activated.body["access"]
            .as_str()
            .expect("access")
            .to_string()
    }
}
