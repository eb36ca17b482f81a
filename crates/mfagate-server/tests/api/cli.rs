//! The admin command line, run as a user would run it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::{spawn_app, PASSWORD};

/// Runs the binary on the blocking pool: the test's runtime must keep running the in-process
/// server (and its writer) while the command waits for the database.
async fn mfagate(env: &[(String, String)], args: &[&str], stdin: &str) -> (bool, String, String) {
    let env = env.to_vec();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || run_mfagate(&env, &args, &stdin))
        .await
        .expect("the command-line runner did not panic")
}

fn run_mfagate(env: &[(String, String)], args: &[String], stdin: &str) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mfagate"));
    // An empty value unsets a variable (RUST_LOG, to run as a user would).
    for (name, _) in env.iter().filter(|(_, value)| value.is_empty()) {
        command.env_remove(name);
    }
    let mut child = command
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().filter(|(_, value)| !value.is_empty()).cloned())
        .env("MFAGATE_ARGON2_MEMORY_KIB", "8")
        .env("MFAGATE_ARGON2_ITERATIONS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mfagate binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn users_are_created_and_their_mfa_reset_from_the_command_line() {
    let app = spawn_app().await;
    let url = app.cli_env();
    let (ok, out, err) = mfagate(
        &url,
        &[
            "user",
            "create",
            "root",
            "--email",
            "root@example.com",
            "--admin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("created user root"), "{out}");

    // The server sees the user the command line made.
    let login = app.login("root").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let access = login.body["access"].as_str().unwrap().to_string();
    let refresh = login.body["refresh"].as_str().unwrap().to_string();
    app.enable_totp(&access).await;
    assert_eq!(app.login("root").await.body["mfa_required"], true);

    let (ok, out, err) = mfagate(&url, &["user", "reset-mfa", "root"], "").await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("removed the second factors"), "{out}");
    let login = app.login("root").await;
    assert!(
        login.body["access"].is_string(),
        "password login again: {}",
        login.body
    );
    // Sessions ended.
    app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
        .await
        .assert_error(401, "invalid_token");

    let (ok, out, _) = mfagate(&url, &["user", "set-admin", "root"], "").await;
    assert!(ok && out.contains("administrator"));
}

#[tokio::test]
async fn command_line_errors_say_what_is_wrong() {
    let app = spawn_app().await;
    let url = app.cli_env();
    let (ok, _, err) = mfagate(&url, &["user", "reset-mfa", "nobody"], "").await;
    assert!(!ok);
    assert!(err.contains("no user named 'nobody'"), "{err}");
    let (ok, _, err) = mfagate(&url, &["user", "create", "x", "--email", "bad"], "pw\n").await;
    assert!(!ok);
    assert!(
        err.contains("username") && err.contains("email") && err.contains("password"),
        "{err}"
    );
    let (ok, _, err) = mfagate(
        &url,
        &["user", "create", "ann", "--email", "a@example.com"],
        "",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("standard input"), "{err}");
}

#[tokio::test]
async fn migrate_creates_the_database_and_says_so_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = vec![(
        "MFAGATE_DATABASE_URL".to_string(),
        format!("sqlite://{}", dir.path().join("sub/dir/m.db").display()),
    )];
    // A missing directory is a mistyped path until shown otherwise: refused, and named.
    let (ok, out, err) = mfagate(&url, &["migrate"], "").await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("sub/dir") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("sub").exists());

    std::fs::create_dir_all(dir.path().join("sub/dir")).unwrap();
    let (ok, out, err) = mfagate(&url, &["migrate"], "").await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("migrations applied"));
    assert!(dir.path().join("sub/dir/m.db").exists());
}

#[test]
fn bad_settings_stop_the_server_with_a_message_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .arg("serve")
        .env("MFAGATE_MFA_MODE", "sometimes")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("MFAGATE_MFA_MODE") && err.contains("required"),
        "{err}"
    );
}

/// The audit events of `event` stored so far.
async fn audited(app: &crate::helpers::TestApp, event: &str) -> usize {
    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    store
        .recent_audit_events(None, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event == event)
        .count()
}

#[tokio::test]
async fn admin_rights_are_granted_once_withdrawn_and_each_change_is_audited_once() {
    let app = spawn_app().await;
    app.register_and_token("ann").await;
    // As a user runs it: no RUST_LOG, so only the answer is printed.
    let mut env = app.cli_env();
    env.push(("RUST_LOG".into(), String::new()));

    let (ok, out, err) = mfagate(&env, &["user", "set-admin", "ann"], "").await;
    assert!(ok, "{out}{err}");
    assert_eq!(out, "ann is now an administrator\n");
    assert_eq!(err, "", "no log lines on the terminal");
    let (ok, out, err) = mfagate(&env, &["user", "set-admin", "ann"], "").await;
    assert!(ok, "{out}{err}");
    assert_eq!(out, "ann is already an administrator; nothing changed\n");
    assert_eq!(audited(&app, "admin_granted").await, 1);
    let users = app
        .get(
            "/auth/admin/users",
            app.login("ann").await.body["access"].as_str(),
        )
        .await;
    assert_eq!(users.status, 200, "an administrator now: {}", users.body);

    let (ok, out, err) = mfagate(&env, &["user", "unset-admin", "ann"], "").await;
    assert!(ok, "{out}{err}");
    assert_eq!(out, "ann is no longer an administrator\n");
    let (ok, out, _) = mfagate(&env, &["user", "unset-admin", "ann"], "").await;
    assert!(ok);
    assert_eq!(out, "ann is not an administrator; nothing changed\n");
    assert_eq!(audited(&app, "admin_revoked").await, 1);
    app.get(
        "/auth/admin/users",
        app.login("ann").await.body["access"].as_str(),
    )
    .await
    .assert_error(403, "forbidden");

    let (ok, _, err) = mfagate(&env, &["user", "set-admin", "nobody"], "").await;
    assert!(!ok);
    assert!(
        err.contains("nobody") || err.contains("no such user"),
        "{err}"
    );
}

#[tokio::test]
async fn keys_list_under_hs256_says_why_there_are_none() {
    let app = spawn_app().await;
    let mut env = app.cli_env();
    env.push(("RUST_LOG".into(), String::new()));
    let (ok, out, err) = mfagate(&env, &["keys", "list"], "").await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        out, "{\"keys\":[]}\n",
        "the JWKS itself stays machine-readable"
    );
    assert!(
        err.contains("HS256") && err.contains("MFAGATE_JWT_ALGORITHM=EdDSA"),
        "{err}"
    );
}
