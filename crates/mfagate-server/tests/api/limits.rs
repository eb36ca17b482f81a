//! Every limit holds under a real burst: requests released together, each on a connection of
//! its own, and at most the limit's number of them get an answer that shows a check ran.

use std::sync::Arc;

use futures::future::join_all;
use mfagate::core::rate::Rate;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::helpers::{code, fresh_step, spawn_app_with, TestApp, PASSWORD};
use mfagate_server::Settings;

/// One answer of a burst: status, error code and body.
pub struct Burst {
    pub status: u16,
    pub error: String,
    pub body: Value,
}

/// One request of a burst: path, JSON body, extra headers.
pub type Request = (String, Value, Vec<(String, String)>);

/// Sends every `(path, body, extra headers)` at once: each on a client (so a connection) of its
/// own, released together by a barrier once all are ready.
pub async fn burst(base: &str, requests: Vec<Request>) -> Vec<Burst> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks = requests.into_iter().map(|(path, body, headers)| {
        let barrier = barrier.clone();
        let url = format!("{base}{path}");
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut request = client.post(url).json(&body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            barrier.wait().await;
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            Burst {
                status,
                error: body["error"].as_str().unwrap_or("").to_string(),
                body,
            }
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

fn count(answers: &[Burst], status: u16, error: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.status == status && a.error == error)
        .count()
}

fn login_body(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

#[tokio::test]
async fn of_a_burst_of_wrong_passwords_at_most_the_limit_are_checked() {
    let app =
        spawn_app_with(|s| s.config.login_throttle = Rate::parse("10/300").ok().flatten()).await;
    app.register("ann").await;
    let mut requests: Vec<_> = (0..99)
        .map(|_| {
            (
                "/auth/login".to_string(),
                login_body("ann", "wrong"),
                vec![],
            )
        })
        .collect();
    // The right password, placed late in the burst.
    requests.insert(
        95,
        ("/auth/login".into(), login_body("ann", PASSWORD), vec![]),
    );
    let answers = burst(&app.addr, requests).await;
    // The window counts failures: at most 10 wrong passwords are checked. The right one, if it
    // was checked, handed its claim back (so one wrong password more may have been checked in
    // its place, still 10 failures in all).
    let failed = count(&answers, 401, "invalid_credentials");
    let won = answers.iter().filter(|a| a.status == 200).count();
    assert!(
        failed <= 10,
        "{failed} wrong passwords were checked past a limit of 10"
    );
    assert!(won <= 1);
    assert_eq!(failed + won + count(&answers, 429, "throttled"), 100);
    // Once the window holds 10 failures, the right password is refused too.
    for _ in failed..10 {
        app.post("/auth/login", login_body("ann", "wrong"), None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login("ann").await.assert_error(429, "throttled");
}

/// A user with TOTP and a live challenge; the TOTP code for the next step.
async fn challenged(app: &TestApp, name: &str) -> (String, String) {
    let enrolled = app.user_with_totp(name).await;
    let ephemeral = app.challenge(name).await;
    (ephemeral, code(&enrolled.secret, enrolled.step + 1))
}

fn verify_request(ephemeral: &str, code: &str) -> Request {
    (
        "/auth/mfa/verify".into(),
        json!({"ephemeral_token": ephemeral, "code": code}),
        vec![],
    )
}

#[tokio::test]
async fn of_a_burst_of_wrong_codes_at_most_the_challenge_attempts_are_checked() {
    let app = spawn_app_with(|_| {}).await;
    fresh_step();
    let (ephemeral, right) = challenged(&app, "ann").await;
    a_right_code_late_in_a_burst_is_checked_only_within_the_attempts(&app, &ephemeral, &right, 6)
        .await;
}

/// 59 wrong codes of `digits` digits and the right one, 31st, released together at one
/// challenge: at most 5 are checked, none of the rest tells that the code was right.
async fn a_right_code_late_in_a_burst_is_checked_only_within_the_attempts(
    app: &TestApp,
    ephemeral: &str,
    right: &str,
    digits: usize,
) {
    let modulus = 10u64.pow(digits as u32);
    let mut requests: Vec<_> = (0..59u64)
        .map(|i| verify_request(ephemeral, &format!("{:0digits$}", (i * 104_729) % modulus)))
        .filter(|(_, body, _)| body["code"] != json!(right))
        .collect();
    requests.insert(30, verify_request(ephemeral, right));
    let total = requests.len();
    let answers = burst(&app.addr, requests).await;
    let wrong = count(&answers, 400, "invalid_code");
    let won = answers.iter().filter(|a| a.status == 200).count();
    assert!(
        wrong + won <= 5,
        "{} codes were checked past a limit of 5",
        wrong + won
    );
    // Every other answer says the attempt was not even looked at; none says the code was right
    // but too late (a 401 would, unless the right code won among the five).
    let refused = count(&answers, 429, "too_many_attempts");
    let gone = count(&answers, 401, "invalid_token");
    assert_eq!(wrong + won + refused + gone, total);
    assert!(won == 1 || gone == 0, "a right code that lost answered 401");
    if won == 0 {
        assert_eq!(wrong, 5);
        // The challenge is dead: even the right code is refused, as any code.
        app.verify(ephemeral, right)
            .await
            .assert_error(429, "too_many_attempts");
    }
}

#[tokio::test]
async fn the_right_code_after_a_burst_of_wrong_ones_does_not_get_through() {
    let app = spawn_app_with(|_| {}).await;
    fresh_step();
    let (ephemeral, right) = challenged(&app, "ann").await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let answers = burst(
        &app.addr,
        (0..50).map(|_| verify_request(&ephemeral, wrong)).collect(),
    )
    .await;
    assert_eq!(count(&answers, 400, "invalid_code"), 5);
    assert_eq!(count(&answers, 429, "too_many_attempts"), 45);
    let late = app.verify(&ephemeral, &right).await;
    late.assert_error(429, "too_many_attempts");
    assert!(late.header("retry-after").is_some());
}

#[tokio::test]
async fn wrong_codes_across_challenges_are_claimed_against_the_users_window() {
    let app = spawn_app_with(|s| {
        s.config.user_failures = Rate::parse("7/900").ok().flatten();
        s.config.max_challenges = 3;
    })
    .await;
    fresh_step();
    let enrolled = app.user_with_totp("ann").await;
    let mut requests = Vec::new();
    let mut challenges = Vec::new();
    for _ in 0..3 {
        let ephemeral = app.challenge("ann").await;
        requests.extend((0..20).map(|_| verify_request(&ephemeral, "000001")));
        challenges.push(ephemeral);
    }
    let answers = burst(&app.addr, requests).await;
    let wrong = count(&answers, 400, "invalid_code");
    assert_eq!(
        wrong, 7,
        "the user's window holds 7 failures across all challenges"
    );
    assert_eq!(
        count(&answers, 429, "throttled") + count(&answers, 429, "too_many_attempts"),
        53
    );
    // Past the window a right code gets through on none of the challenges.
    let right = code(&enrolled.secret, enrolled.step + 1);
    for ephemeral in &challenges {
        let answer = app.verify(ephemeral, &right).await;
        assert_eq!(answer.status, 429, "{}", answer.body);
    }
}

#[tokio::test]
async fn a_burst_of_wrong_codes_at_a_management_call_is_claimed_against_the_users_window() {
    let app =
        spawn_app_with(|s| s.config.user_failures = Rate::parse("10/900").ok().flatten()).await;
    fresh_step();
    let access = app.register_and_token("ann").await;
    let enrolled = app.enable_totp(&access).await;
    let bearer = vec![(
        "authorization".to_string(),
        format!("Bearer {}", enrolled.access),
    )];
    let requests = (0..40)
        .map(|_| {
            (
                "/auth/mfa/recovery-codes/regenerate".to_string(),
                json!({"code": "000001"}),
                bearer.clone(),
            )
        })
        .collect();
    let answers = burst(&app.addr, requests).await;
    assert_eq!(count(&answers, 400, "invalid_code"), 10);
    assert_eq!(count(&answers, 429, "throttled"), 30);
    // A right code now is refused as well, until the window passes.
    app.post(
        "/auth/mfa/recovery-codes/regenerate",
        json!({"code": code(&enrolled.secret, enrolled.step + 1)}),
        Some(&enrolled.access),
    )
    .await
    .assert_error(429, "throttled");
}

#[tokio::test]
async fn wrong_old_passwords_at_password_change_count_as_failed_logins() {
    let app =
        spawn_app_with(|s| s.config.login_throttle = Rate::parse("5/300").ok().flatten()).await;
    let access = app.register_and_token("ann").await;
    let bearer = vec![("authorization".to_string(), format!("Bearer {access}"))];
    let requests = (0..30)
        .map(|i| {
            (
                "/auth/password/change".to_string(),
                json!({"old_password": format!("guess {i}"), "new_password": "a new password"}),
                bearer.clone(),
            )
        })
        .collect();
    let answers = burst(&app.addr, requests).await;
    assert_eq!(count(&answers, 400, "invalid_password"), 5);
    assert_eq!(count(&answers, 429, "throttled"), 25);
    // The same window as a login by that name from that address.
    app.login("ann").await.assert_error(429, "throttled");
}

fn from(ip: &str) -> Vec<(String, String)> {
    vec![("x-forwarded-for".to_string(), ip.to_string())]
}

/// Ann logs in with the right password from her own address.
async fn owner_login(app: &TestApp) -> Burst {
    let mut answers = burst(
        &app.addr,
        vec![(
            "/auth/login".into(),
            login_body("ann", PASSWORD),
            from("198.51.100.7"),
        )],
    )
    .await;
    answers.remove(0)
}

#[tokio::test]
async fn failed_logins_from_one_address_do_not_lock_the_owner_out_elsewhere() {
    let app = spawn_app_with(|s| {
        s.config.login_throttle = Rate::parse("5/300").ok().flatten();
        s.config.login_account_throttle = Rate::parse("8/3600").ok().flatten();
        s.gate.trusted_proxies = mfagate::core::client_ip::parse_list("127.0.0.1").unwrap();
    })
    .await;
    app.register("ann").await;
    let attacker = burst(
        &app.addr,
        (0..20)
            .map(|_| {
                (
                    "/auth/login".into(),
                    login_body("ann", "wrong"),
                    from("203.0.113.66"),
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(count(&attacker, 401, "invalid_credentials"), 5);
    // The owner, elsewhere, still logs in.
    let owner = owner_login(&app).await;
    assert_eq!(owner.status, 200, "{}", owner.body);
    // A guess spread over many addresses is still bounded by the account's own window.
    let spread = burst(
        &app.addr,
        (0..10)
            .map(|i| {
                (
                    "/auth/login".into(),
                    login_body("ann", "wrong"),
                    from(&format!("192.0.2.{}", 10 + i)),
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(
        count(&spread, 401, "invalid_credentials"),
        3,
        "8 per account, 5 used"
    );
    let owner = owner_login(&app).await;
    assert_eq!(owner.status, 429, "{}", owner.body);
}

#[tokio::test]
async fn forwarded_for_lines_are_read_as_one_list() {
    let app = spawn_app_with(|s| {
        s.gate.ip_throttle = Rate::parse("5/60").ok().flatten();
        s.gate.trusted_proxies = mfagate::core::client_ip::parse_list("127.0.0.1").unwrap();
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        // A client-forged first line, and the line the proxy appended: the proxy's counts.
        let answer = app
            .raw(
                app.client
                    .post(app.url("/auth/login"))
                    .header("x-forwarded-for", format!("10.9.9.{i}"))
                    .header("x-forwarded-for", "198.51.100.1")
                    .json(&login_body("x", "y")),
            )
            .await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn one_clients_flood_of_registrations_cannot_starve_anothers_login() {
    let app = spawn_app_with(|s| {
        // Real argon2 cost, so hashes queue up.
        s.config.argon2 = mfagate::core::password::Argon2Params::default();
        s.config.hash_queue_per_ip = 2;
        s.gate.trusted_proxies = mfagate::core::client_ip::parse_list("127.0.0.1").unwrap();
    })
    .await;
    assert_eq!(
        app.raw(
            app.client
                .post(app.url("/auth/register"))
                .header("x-forwarded-for", "198.51.100.7")
                .json(
                    &json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD})
                )
        )
        .await
        .status,
        201
    );
    let mut requests: Vec<_> = (0..40)
        .map(|i| {
            (
                "/auth/register".to_string(),
                json!({"username": format!("bot{i}"), "email": format!("bot{i}@example.com"), "password": PASSWORD}),
                from("203.0.113.9"),
            )
        })
        .collect();
    requests.push((
        "/auth/login".into(),
        login_body("ann", PASSWORD),
        from("198.51.100.7"),
    ));
    let answers = burst(&app.addr, requests).await;
    let (flood, login) = answers.split_at(40);
    let shed = count(flood, 429, "throttled");
    assert!(
        shed >= 30,
        "only {shed} of 40 queued hashes from one client were refused"
    );
    assert!(flood.iter().all(|a| a.status == 201 || a.status == 429));
    assert_eq!(login[0].status, 200, "{}", login[0].body);
}

#[tokio::test]
async fn password_reset_mails_one_address_at_most_once_a_minute() {
    let app = spawn_app_with(|_| {}).await;
    app.register("ann").await;
    let answers = burst(
        &app.addr,
        (0..30)
            .map(|_| {
                (
                    "/auth/password/reset".into(),
                    json!({"email": "ann@example.com"}),
                    vec![],
                )
            })
            .collect(),
    )
    .await;
    assert!(answers.iter().all(|a| a.status == 202));
    app.mail.wait_for("ann@example.com", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.mail.to("ann@example.com").len(), 1);
    // The same answer when throttled as when sent.
    let again = app
        .post(
            "/auth/password/reset",
            json!({"email": "ann@example.com"}),
            None,
        )
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body, answers[0].body);
}

#[tokio::test]
async fn of_a_burst_of_wrong_emailed_codes_at_most_the_challenge_attempts_are_checked() {
    let app = spawn_app_with(|_| {}).await;
    app.user_with_email_codes("ann").await;
    let sent = app.mail.to("ann@example.com").len();
    let login = app.login("ann").await;
    assert_eq!(login.body["email_sent"], true, "{}", login.body);
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap().to_string();
    let right = app.mail.wait_for("ann@example.com", sent + 1).await.code();
    a_right_code_late_in_a_burst_is_checked_only_within_the_attempts(&app, &ephemeral, &right, 7)
        .await;
}

#[tokio::test]
async fn of_a_burst_of_registrations_at_most_the_ip_limit_are_served() {
    let app = spawn_app_with(|s| s.gate.ip_throttle = Rate::parse("5/60").ok().flatten()).await;
    let answers = burst(
        &app.addr,
        (0..30)
            .map(|i| {
                (
                    "/auth/register".to_string(),
                    json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"), "password": PASSWORD}),
                    vec![],
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(answers.iter().filter(|a| a.status == 201).count(), 5);
    assert_eq!(count(&answers, 429, "throttled"), 25);
}

/// Login windows of 2 (per name and IP, per account): were a right password counted, the
/// third right one would be refused.
fn login_windows_of_two(s: &mut Settings) {
    s.config.login_throttle = Rate::parse("2/300").ok().flatten();
    s.config.login_account_throttle = Rate::parse("2/3600").ok().flatten();
}

/// With windows of 2, two wrong passwords fill the window: the right one is then refused.
async fn failures_still_fill_the_window(app: &TestApp, name: &str) {
    for _ in 0..2 {
        app.post("/auth/login", login_body(name, "wrong"), None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login(name).await.assert_error(429, "throttled");
}

#[tokio::test]
async fn right_passwords_and_codes_hand_their_claims_back() {
    // Windows of 2: were a right answer counted, the third would be refused.
    let app = spawn_app_with(|s| {
        login_windows_of_two(s);
        s.config.user_failures = Rate::parse("2/900").ok().flatten();
    })
    .await;
    let enrolled = app.user_with_totp("ann").await;
    for recovery_code in enrolled.recovery_codes.iter().take(3) {
        let ephemeral = app.challenge("ann").await;
        let answer = app.verify(&ephemeral, recovery_code).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    failures_still_fill_the_window(&app, "ann").await;
}

#[tokio::test]
async fn right_passwords_hand_their_claims_back_on_every_way_a_login_ends() {
    // Windows of 2: were a right password counted, the third login of each kind would be
    // refused with `throttled` instead of its own answer.
    let app = spawn_app_with(|s| {
        login_windows_of_two(s);
        s.config.max_challenges = 1;
    })
    .await;
    // No second factor: tokens.
    app.register("bob").await;
    for _ in 0..3 {
        let answer = app.login("bob").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.body["access"].is_string(), "{}", answer.body);
    }
    // A second factor, and no more challenges allowed: the insert refuses, and hands back.
    app.user_with_totp("ann").await;
    app.challenge("ann").await;
    for _ in 0..3 {
        app.login("ann")
            .await
            .assert_error(429, "too_many_challenges");
    }
    failures_still_fill_the_window(&app, "bob").await;
}

#[tokio::test]
async fn a_right_password_of_an_unverified_address_hands_its_claim_back() {
    let app = spawn_app_with(|s| {
        s.config.email_verification = true;
        login_windows_of_two(s);
    })
    .await;
    assert_eq!(app.register("ann").await.status, 201);
    for _ in 0..3 {
        app.login("ann")
            .await
            .assert_error(403, "email_not_verified");
    }
}
