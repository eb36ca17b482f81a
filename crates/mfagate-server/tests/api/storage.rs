//! What the database holds: no secret in plain text, a key that survives restarts, an audit trail.

use serde_json::json;

use crate::helpers::{code, spawn_app};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_database_never_holds_a_totp_secret_recovery_code_or_token_in_plain_text() {
    let app = spawn_app().await;
    let registered = app.register("ann").await;
    let access = registered.body["access"].as_str().unwrap().to_string();
    let refresh = registered.body["refresh"].as_str().unwrap().to_string();
    let enrolled = app.enable_totp(&access).await;
    let ephemeral = app.challenge("ann").await;
    if app.pg.is_none() {
        let files = app.database_files();
        assert!(
            files.iter().any(|f| f.ends_with("mfagate.db-wal")),
            "WAL mode: {files:?}"
        );
    }
    // SQLite: the files, WAL included; PostgreSQL: every row as text.
    let bytes = app.database_contents().await;
    assert!(
        contains(&bytes, b"ann@example.com"),
        "the dump holds the rows"
    );
    let base32 = data_encoding::BASE32_NOPAD.encode(&enrolled.secret);
    assert!(!contains(&bytes, &enrolled.secret), "raw secret");
    assert!(!contains(&bytes, base32.as_bytes()), "base32 secret");
    assert!(!contains(&bytes, base32.to_lowercase().as_bytes()));
    for code in &enrolled.recovery_codes {
        assert!(!contains(&bytes, code.as_bytes()), "recovery code");
        assert!(!contains(&bytes, code.replace('-', "").as_bytes()));
    }
    for token in [&refresh, &ephemeral] {
        assert!(!contains(&bytes, token.as_bytes()), "token");
    }
    assert!(!contains(&bytes, b"correct horse battery"), "password");
}

#[tokio::test]
async fn the_generated_key_file_is_private_and_a_restart_keeps_tokens_secrets_and_codes_on_sqlite()
{
    let app = spawn_app().await;
    assert!(app.settings.secret_key.is_none());
    let registered = app.register("ann").await;
    let access = registered.body["access"].as_str().unwrap().to_string();
    let refresh = registered.body["refresh"].as_str().unwrap().to_string();
    let enrolled = app.enable_totp(&access).await;

    let key_file = app.dir.path().join("mfagate.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key_before = std::fs::read_to_string(&key_file).unwrap();

    let app = app.restart_with(|_| {}).await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_before);
    assert_eq!(app.get("/auth/user", Some(&access)).await.status, 200);
    // The session from before enrolment ended with it; the one enrolment opened survives.
    assert_eq!(
        app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.post(
            "/auth/token/refresh",
            json!({"refresh": enrolled.refresh}),
            None
        )
        .await
        .status,
        200
    );
    let codes = app
        .get("/auth/mfa/recovery-codes", Some(&enrolled.access))
        .await;
    assert_eq!(codes.body["recovery_codes"], json!(enrolled.recovery_codes));
    let ephemeral = app.challenge("ann").await;
    let verified = app
        .verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await;
    assert_eq!(
        verified.status, 200,
        "the sealed TOTP secret opens after a restart"
    );
}

#[tokio::test]
async fn a_rotated_encryption_key_still_opens_old_secrets_when_listed() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let enrolled = app.enable_totp(&access).await;
    // Before: the sealing key is derived from the generated secret. Rotate to an explicit one.
    let old_sealing = app.root_secret().derive("sealing v1");
    let app = app
        .restart_with(|s| {
            s.encryption_key = Some(mfagate::SecretBytes::new(vec![9; 32]));
            s.encryption_keys_old = vec![old_sealing];
        })
        .await;
    let codes = app
        .get("/auth/mfa/recovery-codes", Some(&enrolled.access))
        .await;
    assert_eq!(codes.status, 200, "{}", codes.body);
    assert_eq!(codes.body["recovery_codes"], json!(enrolled.recovery_codes));
    let ephemeral = app.challenge("ann").await;
    assert_eq!(
        app.verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn security_events_land_in_the_audit_trail_without_secrets() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let enrolled = app.enable_totp(&access).await;
    let refresh = enrolled.refresh.clone().unwrap();
    app.post(
        "/auth/login",
        json!({"username": "ann", "password": "wrong"}),
        None,
    )
    .await;
    let ephemeral = app.challenge("ann").await;
    app.verify(&ephemeral, "000000").await;
    app.verify(&ephemeral, &enrolled.recovery_codes[0]).await;
    app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
        .await;
    app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
        .await;

    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    // Events are written by a background writer right after each request: wait for the last.
    let mut rows = Vec::new();
    for _ in 0..40 {
        rows = store.recent_audit_events(None, 1000).await.unwrap();
        if rows.iter().any(|r| r.event == "refresh_reuse_detected") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let events: Vec<String> = rows.iter().map(|r| r.event.clone()).collect();
    for expected in [
        "user_registered",
        "totp_enabled",
        "login_failed",
        "challenge_issued",
        "second_factor_failed",
        "second_factor_ok",
        "recovery_code_used",
        "refresh_reuse_detected",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected} missing from {events:?}"
        );
    }
    // Newest first, in the order they happened; every field kept.
    assert_eq!(events.last().map(String::as_str), Some("user_registered"));
    let passed = rows.iter().find(|r| r.event == "second_factor_ok").unwrap();
    assert_eq!(passed.detail.as_deref(), Some("rec"));
    assert_eq!(passed.user_id, rows.last().unwrap().user_id);
    assert!(passed.user_id.is_some() && passed.at > 0);
    for row in &rows {
        assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
        let detail = row.detail.clone().unwrap_or_default();
        for secret in enrolled.recovery_codes.iter().chain([&refresh, &ephemeral]) {
            assert!(!detail.contains(secret.as_str()));
        }
    }
}

#[tokio::test]
async fn under_steady_writes_the_sqlite_wal_is_copied_back_and_started_over_on_sqlite() {
    use mfagate_core::store::ThrottleStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = mfagate_store::SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    // The WAL header counts how many times the WAL was started over (checkpoint sequence
    // number, bytes 12..16, big-endian).
    let wal = path.with_extension("db-wal");
    let restarts = || {
        let header = std::fs::read(&wal).unwrap_or_default();
        header
            .get(12..16)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = |key: &str, limit: u32| {
        [mfagate::core::store::WindowLimit {
            key: key.to_string(),
            limit,
            window_seconds: 60,
        }]
    };
    store
        .claim_windows(&count("first", u32::MAX), 1)
        .await
        .unwrap();
    let restarts_before = restarts();
    // One commit after another for a while: each appends at least one 4 KiB page to the WAL.
    let began = std::time::Instant::now();
    let mut commits = 0u64;
    while began.elapsed() < std::time::Duration::from_millis(1500) {
        store
            .claim_windows(&count(&format!("key-{}", commits % 500), u32::MAX), 1)
            .await
            .unwrap();
        commits += 1;
    }
    let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // Started over every fifth of a second or so (less often on a busy machine); never
    // started over, the WAL would hold every commit's pages.
    assert!(commits > 200, "only {commits} commits");
    assert!(
        restarts() >= restarts_before + 2,
        "the WAL was started over {} times during {commits} commits",
        restarts() - restarts_before
    );
    assert!(
        wal_bytes < commits * 4096,
        "WAL of {wal_bytes} bytes after {commits} commits"
    );
    // And the database file itself holds what was written: the rows are there after a restart.
    store.close().await;
    let reopened = mfagate_store::SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // key-0 was counted at least once: a limit of 1 is full.
    let claimed = reopened.claim_windows(&count("key-0", 1), 1).await.unwrap();
    assert!(
        matches!(claimed, mfagate::core::store::Claim::Refused { .. }),
        "{claimed:?}"
    );
}

#[tokio::test]
async fn every_answered_registration_survives_a_kill_of_the_server_on_sqlite() {
    use crate::instances::Instance;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kill.db").display());
    let secret = "ab".repeat(32);
    let server = Instance::start(&url, &secret, &[]).await;
    // Sixteen clients register users as fast as they can; the server is killed (SIGKILL) in the
    // middle of it. Writes share group commits, so a kill lands inside batches.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for worker in 0..16 {
        let (client, base, accepted) =
            (server.client.clone(), server.base.clone(), accepted.clone());
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{worker}u{i}");
                let Ok(response) = client
                    .post(format!("{base}/auth/register"))
                    .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": crate::helpers::PASSWORD}))
                    .send()
                    .await
                else {
                    break; // the server is gone
                };
                if response.status() == 201 {
                    accepted.lock().unwrap().push(name);
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    drop(server); // SIGKILL, then wait for it
    for client in clients {
        client.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() > 20, "only {} registrations", accepted.len());

    // Every registration the server answered is there after a restart.
    let restarted = Instance::start(&url, &secret, &[]).await;
    for name in &accepted {
        let login = restarted.login(name).await;
        assert!(login["access"].is_string(), "{name} was lost: {login}");
    }
}

#[tokio::test]
async fn the_clean_up_goes_in_batches_and_keeps_what_is_live() {
    use mfagate::core::store::*;
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let enrolled = app.enable_totp(&access).await;
    let ephemeral = app.challenge("ann").await;
    // One code used; one challenge spent by that login.
    let done = app.verify(&ephemeral, &enrolled.recovery_codes[0]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let live = app.challenge("ann").await;

    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    let user = store.user_by_login("ann").await.unwrap().unwrap();
    let now = mfagate::gate::unix_now();
    for n in 0..7 {
        let expired = NewChallenge {
            id: format!("old{n}"),
            user_id: user.id.clone(),
            token_hash: format!("old-token-{n}"),
            created_at: now - 1_000,
            expires_at: now - 700,
            webauthn_state: None,
            session_id: None,
        };
        store
            .create_challenge(&expired, 100, 5, &[], now - 1_000)
            .await
            .unwrap();
    }
    store
        .record_audit_batch(&[AuditRecord {
            at: now - 500 * 86_400,
            user_id: Some(user.id.clone()),
            event: "login_succeeded",
            ip: None,
            detail: None,
        }])
        .await
        .unwrap();
    let old_events = || async {
        store
            .recent_audit_events(None, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.at < now - 400 * 86_400)
            .count()
    };
    assert_eq!(old_events().await, 1);

    // Batches of two: passes are repeated until one finds nothing.
    let mut deleted = 0;
    let mut passes = 0;
    loop {
        let gone = store
            .delete_expired(now, Some(now - 400 * 86_400), 2)
            .await
            .unwrap();
        assert!(gone <= 2 * 8, "at most a batch of each kind per pass");
        if gone == 0 {
            break;
        }
        deleted += gone;
        passes += 1;
    }
    assert!(passes >= 4, "7 expired challenges take 4 passes of 2");
    // 7 expired challenges, the spent one, the used code, the old event. The server's own
    // clean-up runs once as it starts; on a busy machine that pass can come after the login
    // above and take the spent challenge and the used code first (the loop ended with a pass
    // that found nothing, so they are gone either way).
    assert!(
        (8..=10).contains(&deleted),
        "deleted {deleted}: the 7 expired challenges and the old event, and the spent challenge and used code unless the server's first pass took them"
    );
    assert_eq!(
        store.count_unused_recovery_codes(&user.id).await.unwrap(),
        9,
        "unused codes stay"
    );
    assert_eq!(old_events().await, 0, "past the retention");
    assert!(
        !store
            .recent_audit_events(None, 1000)
            .await
            .unwrap()
            .is_empty(),
        "newer events stay"
    );
    // The live challenge still answers; the rest of the account is untouched.
    let answer = app
        .verify(&live, &code(&enrolled.secret, enrolled.step + 1))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let later = mfagate::gate::unix_now() + 1;
    assert_eq!(
        store.delete_expired(later, None, 2).await.unwrap(),
        1,
        "the challenge that login spent"
    );
}
