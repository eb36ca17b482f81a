//! Input and transport hardening: addresses that could be delivered elsewhere, forged request
//! ids, slow or idle connections, private database files, throttle keys that hold no names, and
//! a login time that does not tell a pending invitation.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn addresses_that_mail_would_deliver_elsewhere_are_refused() {
    let app = spawn_app().await;
    for (i, address) in [
        "=?utf-8?q?ceo?=@victim.com",
        "a,b@example.com",
        "a<b>@example.com",
        "x@-evil-.com",
    ]
    .iter()
    .enumerate()
    {
        let answer = app
            .post(
                "/auth/register",
                json!({"username": format!("user{i}"), "email": address, "password": "correct horse battery"}),
                None,
            )
            .await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"]["email"].is_string(), "{address}");
    }
}

#[tokio::test]
async fn a_request_id_of_an_unsafe_shape_is_replaced() {
    let app = spawn_app().await;
    let safe = app
        .raw(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "abc-123_x.y"),
        )
        .await;
    assert_eq!(safe.header("x-request-id"), Some("abc-123_x.y"));
    for forged in ["a b user_id=admin", "id\"quote", &"x".repeat(65)] {
        let answer = app
            .raw(
                app.client
                    .get(app.url("/healthz"))
                    .header("x-request-id", forged),
            )
            .await;
        let id = answer.header("x-request-id").unwrap();
        assert_ne!(id, forged);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
    }
}

#[tokio::test]
async fn unknown_login_names_are_never_stored_in_clear() {
    let app = spawn_app().await;
    let name = format!("ghost{}", "q".repeat(4000));
    for i in 0..5 {
        app.post(
            "/auth/login",
            json!({"username": format!("{name}{i}"), "password": "x"}),
            None,
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    let bytes = app.database_contents().await;
    assert!(
        !bytes.windows(64).any(|w| w == &name.as_bytes()[..64]),
        "a login name is stored in clear"
    );
}

#[tokio::test]
async fn the_database_files_are_private_on_sqlite() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.register("ann").await;
    let files = app.database_files();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_and_cannot_crowd_out_others() {
    let app = spawn_app_with(|s| {
        s.http.header_timeout_seconds = 1;
        s.http.body_timeout_seconds = 1;
        s.http.max_connections = 20;
    })
    .await;
    let address = app.addr.trim_start_matches("http://").to_string();
    // More idle connections than the cap, and some that send half a request.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    for stream in idle.iter_mut().take(5) {
        stream
            .write_all(
                b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
            )
            .await
            .unwrap();
    }
    // A well-behaved client is served once the idle ones time out (it waits in the backlog).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The server closed the idle connections: reading one reaches its end.
    let mut leftover = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), idle[0].read_to_end(&mut leftover)).await;
    assert!(read.is_ok(), "an idle connection stayed open");
    // A body that never arrives is cut off too.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    assert!(done.is_ok(), "a half-sent body kept its connection open");
}

#[tokio::test]
async fn a_login_for_a_pending_invitation_takes_as_long_as_any_other() {
    let app = spawn_app_with(|s| {
        s.config.argon2 = mfagate::core::password::Argon2Params::default();
    })
    .await;
    let admin = app.admin_token("root").await;
    app.post(
        "/auth/admin/invitations",
        json!({"email": "new@example.com", "username": "newbie"}),
        Some(&admin),
    )
    .await;
    // Interleaved, so that a busy moment of the machine falls on both alike.
    let (mut pending, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for (name, samples) in [("newbie", &mut pending), ("nobody-at-all", &mut unknown)] {
            let started = Instant::now();
            app.post(
                "/auth/login",
                json!({"username": name, "password": "guess"}),
                None,
            )
            .await
            .assert_error(401, "invalid_credentials");
            samples.push(started.elapsed());
        }
    }
    pending.sort();
    unknown.sort();
    let (pending, unknown) = (pending[2], unknown[2]);
    // Both pay one full argon2 hash (about 20 ms here); skipping it took about 1 ms.
    assert!(
        pending * 5 >= unknown,
        "pending invitation {pending:?} against unknown user {unknown:?}"
    );
}
