//! What the server refuses at start-up, and how it says so: keys that cannot open the database,
//! a SQLite path whose directory is missing, a database that cannot be reached, an address that
//! is not HOST:PORT, required mode with mail that only goes to the log.

use mfagate::{Config, GateOptions, Keys, MfaGate, SecretBytes};
use mfagate_server::{Application, Settings};

use crate::helpers::{code, spawn_app, spawn_app_with};

/// Builds the server with `settings`, expecting a refusal; returns its message.
async fn refusal(settings: Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("the server started, but it should have refused"),
        Err(error) => error.to_string(),
    }
}

/// The id of the sealing key the app runs with: the prefix of everything it seals.
async fn sealing_key_id(app: &crate::helpers::TestApp, access: &str) -> String {
    let _ = app.enable_totp(access).await;
    let keys = Keys::from_secret(app.root_secret(), None, vec![]);
    mfagate::core::sealing::Sealer::new(&keys.sealing, &[])
        .current_key_id()
        .to_string()
}

#[tokio::test]
async fn a_restart_with_another_key_is_refused_and_names_the_key_the_data_needs() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let key_id = sealing_key_id(&app, &access).await;
    let mut app = app;
    app.stop().await;

    let mut settings = app.settings.clone();
    settings.secret_key = Some(SecretBytes::generate(32));
    let message = refusal(settings).await;
    assert!(message.contains(&key_id), "names the data's key: {message}");
    assert!(
        message.contains("MFAGATE_ENCRYPTION_KEYS_OLD") && message.contains("MFAGATE_SECRET_KEY"),
        "says what to do: {message}"
    );
    assert!(
        !message.contains(&app.root_secret().to_hex()),
        "no key in the message"
    );

    // The right key starts, and the data opens.
    let app = app.restart_with(|_| {}).await;
    assert_eq!(app.login("ann").await.body["mfa_required"], true);
}

#[tokio::test]
async fn the_library_refuses_a_key_that_cannot_open_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let config = Config {
        argon2: mfagate::core::password::Argon2Params::insecure_fast(),
        ..Config::default()
    };
    let first = SecretBytes::generate(32);
    let store = mfagate_store::open(&url).await.unwrap();
    let gate = MfaGate::new(
        store,
        config.clone(),
        Keys::from_secret(first.clone(), None, vec![]),
        GateOptions::default(),
    )
    .await
    .expect("a new database takes any key");
    drop(gate);

    let store = mfagate_store::open(&url).await.unwrap();
    let refused = MfaGate::new(
        store,
        config.clone(),
        Keys::from_secret(SecretBytes::generate(32), None, vec![]),
        GateOptions::default(),
    )
    .await;
    let Err(error) = refused else {
        panic!("another key is refused");
    };
    assert!(
        matches!(error, mfagate::core::Error::KeyMismatch(_)),
        "{error}"
    );
    assert!(error.to_string().contains("sealing key of id"), "{error}");

    // A new key with the old one kept for opening is accepted.
    let store = mfagate_store::open(&url).await.unwrap();
    let old_sealing = Keys::from_secret(first, None, vec![]).sealing;
    MfaGate::new(
        store,
        config,
        Keys::from_secret(SecretBytes::generate(32), None, vec![old_sealing]),
        GateOptions::default(),
    )
    .await
    .expect("a rotation that keeps the old key starts");
}

#[tokio::test]
async fn a_database_from_before_key_checks_learns_its_key_from_its_data_on_sqlite() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let key_id = sealing_key_id(&app, &access).await;
    let mut app = app;
    app.stop().await;
    // Make the database look as the previous release left it: no record of the key.
    {
        let path = mfagate_store::sqlite::SqliteStore::database_path(&app.settings.database_url)
            .unwrap()
            .to_path_buf();
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "DROP TABLE sealing_keys;
             DELETE FROM _sqlx_migrations WHERE version = 5;
             -- Migration 5 reads the TOTP devices of that time, which later became `factors`.
             CREATE TABLE totp_devices AS SELECT user_id, secret_sealed FROM factors;",
        )
        .unwrap();
    }
    let mut settings = app.settings.clone();
    settings.secret_key = Some(SecretBytes::generate(32));
    let message = refusal(settings).await;
    assert!(message.contains(&key_id), "{message}");
    let app = app.restart_with(|_| {}).await;
    assert_eq!(app.login("ann").await.body["mfa_required"], true);
}

#[tokio::test]
async fn a_sqlite_path_in_a_missing_directory_is_refused_and_nothing_is_created_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let mut settings = Settings::for_tests(dir.path());
    settings.database_url = format!("sqlite://{}", missing.join("x.db").display());
    let message = refusal(settings).await;
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("does not exist"),
        "{message}"
    );
    assert!(!dir.path().join("no").exists(), "no directory was made");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no database and no key file were made"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_port_is_named_as_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Bound, then dropped: nothing listens there now.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(dir.path());
    settings.database_url = format!("postgres://postgres@127.0.0.1:{port}/mfagate");
    settings.secret_key = Some(SecretBytes::generate(32));
    let message = refusal(settings).await;
    assert!(
        message.contains(&format!("127.0.0.1:{port}")) && message.contains("connection refused"),
        "{message}"
    );
    assert!(!message.contains("timed out"), "{message}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_missing_postgres_database_is_named_on_postgres() {
    let url = crate::backend::postgres_url();
    let base = url.split('?').next().unwrap();
    let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(dir.path());
    settings.database_url = format!("{base}/mfagate_no_such_database");
    settings.secret_key = Some(SecretBytes::generate(32));
    let message = refusal(settings).await;
    assert!(
        message.contains("no database 'mfagate_no_such_database'") && message.contains("createdb"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_database_scheme_is_explained_without_a_double_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(dir.path());
    settings.database_url = "mysql://root@localhost/app".into();
    let message = refusal(settings).await;
    assert!(
        message.contains("sqlite://PATH") && message.contains("postgres://"),
        "{message}"
    );
    assert!(!message.contains("database: database error"), "{message}");
}

#[tokio::test]
async fn a_busy_port_says_another_program_has_it() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(dir.path());
    settings.listen = busy.local_addr().unwrap().to_string();
    let message = refusal(settings).await;
    assert!(
        message.contains("another program is using that port"),
        "{message}"
    );
}

#[tokio::test]
async fn required_mode_refuses_the_log_mailer_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(dir.path());
    settings.config.mode = mfagate::MfaMode::Required;
    settings.smtp_url = None;
    let message = refusal(settings.clone()).await;
    assert!(
        message.contains("MFAGATE_SMTP_URL") && message.contains("MFAGATE_ALLOW_LOG_MAILER"),
        "{message}"
    );
    settings.allow_log_mailer = true;
    Application::build(settings)
        .await
        .expect("allowed for development");
}

#[tokio::test]
async fn a_restart_keeps_working_codes_with_the_same_key() {
    // The other side of the refusal: the key file is read back, and codes still work.
    let app = spawn_app_with(|_| {}).await;
    let access = app.register_and_token("ann").await;
    let enrolled = app.enable_totp(&access).await;
    let app = app.restart_with(|_| {}).await;
    let ephemeral = app.challenge("ann").await;
    let answer = app
        .verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}
