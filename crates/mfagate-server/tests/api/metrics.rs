//! `MFAGATE_METRICS_LISTEN` (API.md v3, "Operations"): `/metrics` in the Prometheus text format
//! on its own address, scraped after a login, a failed code and a throttle; the counters moved,
//! and no label value is a username, an address or a token.

use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};

async fn scrape(app: &TestApp) -> String {
    let url = format!(
        "{}/metrics",
        app.metrics.as_deref().expect("metrics address")
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels as rendered).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_logins_failed_codes_throttles_and_requests_without_personal_labels() {
    let app = spawn_app_with(|s| {
        s.metrics_listen = Some("127.0.0.1:0".into());
        s.config.login_throttle = Some(mfagate::core::rate::Rate {
            limit: 2,
            window_seconds: 300,
        });
    })
    .await;
    // Not on the API's address.
    assert_eq!(app.get_status("/metrics").await, 404);
    let before = scrape(&app).await;
    assert!(before.contains("mfagate_build_info{version=\""), "{before}");
    assert!(before.contains("mfagate_uptime_seconds"), "{before}");

    let enrolled = app.user_with_totp("ann").await;
    let challenge = app.challenge("ann").await;
    let wrong = app.verify(&challenge, "000000").await;
    assert_eq!(wrong.status, 400);
    for _ in 0..3 {
        app.post(
            "/auth/login",
            json!({"username": "ann", "password": "wrong password"}),
            None,
        )
        .await;
    }
    let after = scrape(&app).await;
    for (series, at_least) in [
        ("mfagate_logins_total{outcome=\"challenge\"}", 1.0),
        ("mfagate_logins_total{outcome=\"invalid_credentials\"}", 2.0),
        ("mfagate_logins_total{outcome=\"throttled\"}", 1.0),
        ("mfagate_second_factor_total{method=\"code\",outcome=\"invalid\"}", 1.0),
        ("mfagate_throttled_total{kind=\"login\"}", 1.0),
        ("mfagate_challenges_total{outcome=\"issued\"}", 1.0),
        ("mfagate_audit_events_total{event=\"second_factor_failed\"}", 1.0),
        (
            "mfagate_http_requests_total{route=\"/auth/mfa/verify\",method=\"POST\",status=\"400\"}",
            1.0,
        ),
        (
            "mfagate_http_requests_total{route=\"/auth/login\",method=\"POST\",status=\"429\"}",
            1.0,
        ),
    ] {
        let value = sample(&after, series);
        assert!(
            value - sample(&before, series) >= at_least,
            "{series} = {value}\n{after}"
        );
    }
    assert!(after.contains("mfagate_http_request_duration_seconds_bucket{"));
    assert!(after.contains("mfagate_password_hash_seconds_bucket{"));
    assert!(after.contains("mfagate_sqlite_writer_batch_size") || app.pg.is_some());
    // Every answered SQLite write waited for a sync of the WAL (MFAGATE_SQLITE_SYNCHRONOUS=full).
    assert!(after.contains("mfagate_sqlite_wal_sync_seconds_bucket{") || app.pg.is_some());

    // No label value is personal: no username, address, token, IP or user id.
    let user_id = app.get("/auth/user", Some(&enrolled.access)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for personal in [
        "ann",
        "ann@example.com",
        "127.0.0.1",
        challenge.as_str(),
        enrolled.access.as_str(),
        user_id.as_str(),
    ] {
        let quoted = format!("\"{personal}\"");
        assert!(!after.contains(&quoted), "{personal} appears in a label");
    }
}
