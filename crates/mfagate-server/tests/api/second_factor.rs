//! Login with a second factor: challenges, TOTP and recovery codes, replay, attempt limits.

use serde_json::json;

use crate::helpers::{amr, code, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_user_with_totp_gets_a_challenge_then_tokens_with_amr_otp() {
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    let login = app.login("ann").await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["mfa_required"], true);
    assert_eq!(login.body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(login.body["expires_in"], 300);
    assert!(login.body.get("access").is_none());
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap();
    // The ephemeral token is no access token.
    app.get("/auth/user", Some(ephemeral))
        .await
        .assert_error(401, "not_authenticated");

    let answer = app
        .verify(ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let access = answer.body["access"].as_str().unwrap();
    assert_eq!(amr(access), vec!["pwd", "mfa", "otp"]);
    assert!(answer.body["refresh"].is_string());
    // Refreshed tokens keep the amr of the login.
    let refreshed = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": answer.body["refresh"]}),
            None,
        )
        .await;
    assert_eq!(
        amr(refreshed.body["access"].as_str().unwrap()),
        vec!["pwd", "mfa", "otp"]
    );
    // The ephemeral token is spent.
    app.verify(ephemeral, &code(&enrolled.secret, enrolled.step + 2))
        .await
        .assert_error(401, "invalid_token");
    let status = app.get("/auth/mfa/status", Some(access)).await;
    assert!(status.body["last_used_at"].is_string());
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_never_at_or_before_the_last_one() {
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    // The activation step is used already.
    let first = app.challenge("ann").await;
    let replay = app
        .verify(&first, &code(&enrolled.secret, enrolled.step))
        .await;
    replay.assert_error(400, "invalid_code");
    assert_eq!(replay.body["attempts_remaining"], 4);
    // A later step works once...
    assert_eq!(
        app.verify(&first, &code(&enrolled.secret, enrolled.step + 2))
            .await
            .status,
        200
    );
    // ...and then neither it nor the earlier one (still in the window) works again.
    let second = app.challenge("ann").await;
    app.verify(&second, &code(&enrolled.secret, enrolled.step + 2))
        .await
        .assert_error(400, "invalid_code");
    app.verify(&second, &code(&enrolled.secret, enrolled.step + 1))
        .await
        .assert_error(400, "invalid_code");
}

#[tokio::test]
async fn a_recovery_code_logs_in_once_with_amr_rec_in_any_case_or_spacing() {
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    let typed = enrolled.recovery_codes[0]
        .to_uppercase()
        .replace('-', " - ");
    let ephemeral = app.challenge("ann").await;
    let answer = app.verify(&ephemeral, &typed).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let access = answer.body["access"].as_str().unwrap();
    assert_eq!(amr(access), vec!["pwd", "mfa", "rec"]);
    let status = app.get("/auth/mfa/status", Some(access)).await;
    assert_eq!(status.body["recovery_codes_remaining"], 9);
    assert!(status.body["last_used_at"].is_string());
    let listed = app.get("/auth/mfa/recovery-codes", Some(access)).await;
    assert!(!listed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .contains(&json!(enrolled.recovery_codes[0])));
    let again = app.challenge("ann").await;
    app.verify(&again, &enrolled.recovery_codes[0])
        .await
        .assert_error(400, "invalid_code");
}

#[tokio::test]
async fn of_twenty_concurrent_uses_of_one_recovery_code_exactly_one_wins() {
    let app = spawn_app_with(|s| {
        s.config.max_challenges = 25;
        // Nineteen losers exceed the per-user failure budget; this test is about the race, so
        // every loser should hear `invalid_code`, not `throttled`.
        s.config.user_failures = None;
    })
    .await;
    let enrolled = app.user_with_totp("ann").await;
    let mut challenges = Vec::new();
    for _ in 0..20 {
        challenges.push(app.challenge("ann").await);
    }
    let code = enrolled.recovery_codes[0].clone();
    let answers = futures::future::join_all(challenges.iter().map(|e| app.verify(e, &code))).await;
    let winners = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(winners, 1, "exactly one success");
    for loser in answers.iter().filter(|a| a.status != 200) {
        loser.assert_error(400, "invalid_code");
    }
}

#[tokio::test]
async fn of_concurrent_logins_with_one_totp_code_one_wins_and_the_others_keep_their_challenge() {
    let app = spawn_app_with(|s| s.config.max_challenges = 10).await;
    let enrolled = app.user_with_totp("ann").await;
    let mut challenges = Vec::new();
    for _ in 0..8 {
        challenges.push(app.challenge("ann").await);
    }
    // All at once: on SQLite the writes land in one group commit, where a refused claim must
    // undo its own challenge spend and nothing else.
    let totp_code = code(&enrolled.secret, enrolled.step + 1);
    let answers =
        futures::future::join_all(challenges.iter().map(|e| app.verify(e, &totp_code))).await;
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
    for answer in answers.iter().filter(|a| a.status != 200) {
        answer.assert_error(400, "invalid_code");
        assert_eq!(answer.body["attempts_remaining"], 4, "{}", answer.body);
    }
    // Every losing challenge is still live: each takes a recovery code of its own.
    let losers = challenges
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.status != 200);
    for ((ephemeral, _), recovery) in losers.zip(&enrolled.recovery_codes) {
        let answer = app.verify(ephemeral, recovery).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            amr(answer.body["access"].as_str().unwrap()),
            ["pwd", "mfa", "rec"]
        );
    }
}

#[tokio::test]
async fn after_max_attempts_the_challenge_is_dead_even_for_a_right_code() {
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    let ephemeral = app.challenge("ann").await;
    for remaining in (0..5).rev() {
        let answer = app.verify(&ephemeral, "000000").await;
        answer.assert_error(400, "invalid_code");
        assert_eq!(answer.body["attempts_remaining"], remaining);
    }
    let dead = app
        .verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await;
    dead.assert_error(429, "too_many_attempts");
    let retry_after: i64 = dead.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn the_attempt_limit_is_a_setting() {
    let app = spawn_app_with(|s| s.config.max_attempts = 2).await;
    app.user_with_totp("ann").await;
    let ephemeral = app.challenge("ann").await;
    assert_eq!(
        app.verify(&ephemeral, "111111").await.body["attempts_remaining"],
        1
    );
    assert_eq!(
        app.verify(&ephemeral, "111111").await.body["attempts_remaining"],
        0
    );
    app.verify(&ephemeral, "111111")
        .await
        .assert_error(429, "too_many_attempts");
}

#[tokio::test]
async fn an_expired_or_unknown_challenge_is_an_invalid_token() {
    let app = spawn_app_with(|s| s.config.challenge_ttl = 1).await;
    let enrolled = app.user_with_totp("ann").await;
    let login = app.login("ann").await;
    assert_eq!(login.body["expires_in"], 1);
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap().to_string();
    app.clock.advance(2); // past the 1-second lifetime, without waiting for it
    app.verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await
        .assert_error(401, "invalid_token");
    app.verify("made-up", "123456")
        .await
        .assert_error(401, "invalid_token");
    // An access token is not an ephemeral token.
    let access = app
        .post(
            "/auth/register",
            json!({"username": "bob", "email": "b@example.com", "password": "long password"}),
            None,
        )
        .await;
    app.verify(access.body["access"].as_str().unwrap(), "123456")
        .await
        .assert_error(401, "invalid_token");
}

/// A challenge's token names its challenge (`<id>.<secret>`) and is proved whole: the secret
/// under another id, or another secret under its id, is refused like any unknown token. A token
/// from before tokens named their challenges (no id; the migration re-keyed its row to the
/// token's hash) still answers its challenge.
#[tokio::test]
async fn a_challenge_token_is_proved_whole_and_one_from_before_the_upgrade_still_works() {
    use mfagate::core::secret::{generate_token, hash_token};
    use mfagate::core::store::*;
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    let ephemeral = app.challenge("ann").await;
    let (id, secret) = ephemeral
        .split_once('.')
        .expect("the token names its challenge");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ephemeral}"
    );
    let other = app.challenge("ann").await;
    let (other_id, _) = other.split_once('.').unwrap();
    let right = code(&enrolled.secret, enrolled.step + 1);
    for forged in [
        format!("{id}.{}", generate_token()),
        format!("{other_id}.{secret}"),
        format!("{id}."),
        format!("{id}.{secret}x"),
        secret.to_string(),
    ] {
        app.verify(&forged, &right)
            .await
            .assert_error(401, "invalid_token");
    }
    // Nothing forged counted as an attempt: the real token takes the right code.
    let done = app.verify(&ephemeral, &right).await;
    assert_eq!(done.status, 200, "{}", done.body);

    // A challenge as the migration left one made before: its id is its token's hash.
    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    let user = store.user_by_login("ann").await.unwrap().unwrap();
    let old_token = generate_token();
    let now = mfagate::gate::unix_now();
    let created = store
        .create_challenge(
            &NewChallenge {
                id: hash_token(&old_token),
                user_id: user.id.clone(),
                token_hash: hash_token(&old_token),
                created_at: now,
                expires_at: now + 300,
                webauthn_state: None,
                session_id: None,
            },
            100,
            5,
            &[],
            now,
        )
        .await
        .unwrap();
    assert_eq!(created, ChallengeCreated::Created);
    let old = app
        .verify(&old_token, &code(&enrolled.secret, enrolled.step + 2))
        .await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(
        amr(old.body["access"].as_str().unwrap()),
        ["pwd", "mfa", "otp"]
    );
}

#[tokio::test]
async fn at_most_three_live_challenges_per_user() {
    let app = spawn_app().await;
    app.user_with_totp("ann").await;
    for _ in 0..3 {
        app.challenge("ann").await;
    }
    let fourth = app.login("ann").await;
    fourth.assert_error(429, "too_many_challenges");
    let retry_after: i64 = fourth.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after));
}

#[tokio::test]
async fn failed_codes_per_user_are_throttled_across_challenges() {
    let app = spawn_app_with(|s| {
        s.config.user_failures = mfagate::core::rate::Rate::parse("3/900").unwrap();
    })
    .await;
    let enrolled = app.user_with_totp("ann").await;
    let first = app.challenge("ann").await;
    app.verify(&first, "000000")
        .await
        .assert_error(400, "invalid_code");
    app.verify(&first, "000000")
        .await
        .assert_error(400, "invalid_code");
    // A new challenge does not reset the count.
    let second = app.challenge("ann").await;
    app.verify(&second, "000000")
        .await
        .assert_error(400, "invalid_code");
    let throttled = app
        .verify(&second, &code(&enrolled.secret, enrolled.step + 1))
        .await;
    throttled.assert_error(429, "throttled");
    let retry_after: i64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry_after), "{retry_after}");
}
