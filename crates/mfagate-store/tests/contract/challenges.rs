//! ChallengeStore: a per-user limit of live challenges, attempts claimed before they are
//! checked, and a completion that happens once and claims its factor once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mfagate_core::store::*;

use crate::backend::*;

fn challenge(id: &str, user: &str) -> NewChallenge {
    NewChallenge {
        id: id.into(),
        user_id: user.into(),
        token_hash: format!("token-{id}"),
        created_at: NOW,
        expires_at: NOW + 300,
        webauthn_state: None,
        session_id: None,
    }
}

#[tokio::test]
async fn a_challenge_is_found_by_its_id_with_the_hash_its_token_is_proved_against() {
    let s = store().await;
    user(&*s, "ann").await;
    s.create_challenge(&challenge("c1", "ann"), 3, 5, &[], NOW)
        .await
        .unwrap();
    let found = s.challenge_by_id("c1").await.unwrap().expect("created");
    assert_eq!(
        (
            found.id.as_str(),
            found.user_id.as_str(),
            found.token_hash.as_str()
        ),
        ("c1", "ann", "token-c1")
    );
    assert_eq!(
        (found.expires_at, found.failures, found.spent),
        (NOW + 300, 0, false)
    );
    assert!(s.challenge_by_id("c2").await.unwrap().is_none());
    // Two challenges may not share an id; nothing keeps their token hashes apart, since
    // tokens are proved by the caller and hold 256 random bits.
    assert!(s
        .create_challenge(&challenge("c1", "ann"), 3, 5, &[], NOW)
        .await
        .is_err());
}

#[tokio::test]
async fn a_challenge_is_read_with_the_verified_factors_of_its_user_in_enrolment_order() {
    let s = store().await;
    user(&*s, "ann").await;
    user(&*s, "bob").await;
    s.create_challenge(&challenge("c1", "ann"), 3, 5, &[], NOW)
        .await
        .unwrap();
    // No factor yet: the challenge alone.
    let (found, factors) = s
        .challenge_and_factors("c1")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        (
            found.id.as_str(),
            found.user_id.as_str(),
            found.token_hash.as_str()
        ),
        ("c1", "ann", "token-c1")
    );
    assert!(factors.is_empty(), "{factors:?}");

    first_totp(&*s, "ann", "phone", &["k.a"]).await;
    pending(&*s, "ann", "tablet", "Tablet").await;
    s.verify_factor(&verification("ann", "tablet", 10), NOW)
        .await
        .unwrap();
    // Pending, so not listed; and bob's factor is bob's.
    pending(&*s, "ann", "laptop", "Laptop").await;
    first_totp(&*s, "bob", "bobs", &[]).await;
    let (found, factors) = s
        .challenge_and_factors("c1")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        (found.expires_at, found.failures, found.spent),
        (NOW + 300, 0, false)
    );
    let ids: Vec<&str> = factors.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["phone", "tablet"]);
    assert!(factors.iter().all(|f| f.user_id == "ann" && f.verified));
    assert_eq!(factors[0].secret_sealed.as_deref(), Some("k.sealed"));
    assert_eq!(factors[0].last_step, Some(100));
    // The same as each read alone.
    assert_eq!(
        factors.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        s.factors("ann")
            .await
            .unwrap()
            .iter()
            .map(|f| f.id.clone())
            .collect::<Vec<_>>()
    );
    assert!(s.challenge_and_factors("c2").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_the_limit_of_live_challenges_is_created_under_a_race() {
    let s = store().await;
    user(&*s, "ann").await;
    let store = s.store.clone();
    let created = race(RACERS, move |n| {
        let store = Arc::clone(&store);
        async move {
            store
                .create_challenge(&challenge(&format!("c{n}"), "ann"), 3, 5, &[], NOW)
                .await
                .unwrap()
        }
    })
    .await;
    let made = created
        .iter()
        .filter(|c| **c == ChallengeCreated::Created)
        .count();
    assert_eq!(made, 3, "{created:?}");
    // The others are told when the earliest live one ends.
    assert!(created.iter().all(|c| match c {
        ChallengeCreated::Created => true,
        ChallengeCreated::TooMany { earliest_expiry } => *earliest_expiry == NOW + 300,
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_the_maximum_of_attempts_is_claimed_under_a_race() {
    let s = store().await;
    user(&*s, "ann").await;
    s.create_challenge(&challenge("c", "ann"), 3, 5, &[], NOW)
        .await
        .unwrap();
    let window = WindowLimit {
        key: "mfa-user:ann".into(),
        limit: 100,
        window_seconds: 900,
    };
    let store = s.store.clone();
    let claims = race(RACERS, move |_| {
        let (store, window) = (Arc::clone(&store), window.clone());
        async move {
            store
                .claim_challenge_attempt("c", 5, Some(&window), NOW)
                .await
                .unwrap()
        }
    })
    .await;
    let granted = claims
        .iter()
        .filter(|c| matches!(c, AttemptClaim::Claimed { .. }))
        .count();
    assert_eq!(granted, 5, "{claims:?}");
    assert!(claims.iter().all(|c| matches!(
        c,
        AttemptClaim::Claimed { .. } | AttemptClaim::ChallengeDead { .. }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_completes_once_under_a_race_and_stores_one_session() {
    let s = store().await;
    user(&*s, "ann").await;
    s.create_challenge(&challenge("c", "ann"), 3, 5, &[], NOW)
        .await
        .unwrap();
    let store = s.store.clone();
    let outcomes = race(RACERS, move |n| {
        let store = Arc::clone(&store);
        async move {
            store
                .complete_challenge(
                    "c",
                    FactorClaim::EmailCode,
                    &refresh(&format!("login-{n}"), "ann"),
                    None,
                    NOW,
                )
                .await
                .unwrap()
        }
    })
    .await;
    let completed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == Completion::Completed)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(completed.len(), 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Completion::Completed | Completion::ChallengeGone)));
    // Only the winner's refresh token was stored.
    for n in 0..RACERS {
        let successor = RefreshSuccessor {
            id: format!("next-{n}"),
            token_hash: format!("next-{n}"),
            created_at: NOW,
            expires_at: NOW + 3600,
        };
        let rotated = s
            .rotate_refresh_token(&presented(&format!("login-{n}")), &successor, NOW)
            .await
            .unwrap();
        assert_eq!(
            matches!(rotated, RefreshOutcome::Rotated { .. }),
            completed.contains(&n),
            "login-{n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_totp_step_completes_one_login_per_factor_and_a_refused_claim_changes_nothing() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &[]).await;
    for n in 0..RACERS {
        s.create_challenge(&challenge(&format!("c{n}"), "ann"), 100, 5, &[], NOW)
            .await
            .unwrap();
    }
    let store = s.store.clone();
    let outcomes = race(RACERS, move |n| {
        let store = Arc::clone(&store);
        async move {
            store
                .complete_challenge(
                    &format!("c{n}"),
                    FactorClaim::TotpStep {
                        factor_id: "phone".into(),
                        step: 200,
                    },
                    &refresh(&format!("login-{n}"), "ann"),
                    None,
                    NOW,
                )
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Completion::Completed)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Completion::FactorRefused)
            .count(),
        RACERS - 1
    );
    // The refused challenges are still live: a later step completes one.
    let loser = outcomes
        .iter()
        .position(|o| *o == Completion::FactorRefused)
        .unwrap();
    assert_eq!(
        s.complete_challenge(
            &format!("c{loser}"),
            FactorClaim::TotpStep {
                factor_id: "phone".into(),
                step: 201,
            },
            &refresh("late", "ann"),
            None,
            NOW,
        )
        .await
        .unwrap(),
        Completion::Completed
    );
}

#[tokio::test]
async fn a_challenge_insert_hands_back_the_password_claim_whether_or_not_it_is_created() {
    let s = store().await;
    user(&*s, "ann").await;
    let window = |key: &str| WindowLimit {
        key: key.into(),
        limit: 1,
        window_seconds: 900,
    };
    let full = |key: &'static str| {
        let s = &s;
        async move {
            matches!(
                s.claim_windows(&[window(key)], NOW).await.unwrap(),
                Claim::Refused { .. }
            )
        }
    };
    // Created: both windows the password was counted in get their unit back.
    let both = [window("login-ip"), window("login-account")];
    assert_eq!(s.claim_windows(&both, NOW).await.unwrap(), Claim::Granted);
    assert_eq!(
        s.create_challenge(&challenge("c1", "ann"), 1, 5, &both, NOW)
            .await
            .unwrap(),
        ChallengeCreated::Created
    );
    assert!(!full("login-ip").await && !full("login-account").await);
    // Refused (one live challenge at most): handed back all the same, the password was right.
    let one = [window("login-other")];
    assert_eq!(s.claim_windows(&one, NOW).await.unwrap(), Claim::Granted);
    assert!(matches!(
        s.create_challenge(&challenge("c2", "ann"), 1, 5, &one, NOW)
            .await
            .unwrap(),
        ChallengeCreated::TooMany { .. }
    ));
    assert!(!full("login-other").await);
    // Without a hand-back nothing is given back.
    assert!(matches!(
        s.create_challenge(&challenge("c3", "ann"), 1, 5, &[], NOW)
            .await
            .unwrap(),
        ChallengeCreated::TooMany { .. }
    ));
    assert!(full("login-other").await);
}

/// An answer's check that counts its runs and proves an e-mailed code (`right`) or nothing.
fn counted_check(runs: &Arc<AtomicUsize>, right: bool, token: &str) -> AnswerCheck {
    let (runs, refresh) = (Arc::clone(runs), refresh(token, "ann"));
    Box::new(move || {
        runs.fetch_add(1, Ordering::SeqCst);
        right.then_some(Proven {
            claim: FactorClaim::EmailCode,
            refresh,
        })
    })
}

/// A burst of answers to one challenge that allows 5 attempts, each with a check that proves
/// (`right`) or not: the answers, and how many checks ran.
async fn answer_burst(right: bool) -> (Vec<Answered>, usize) {
    let s = store().await;
    user(&*s, "ann").await;
    s.create_challenge(&challenge("c", "ann"), 3, 5, &[], NOW)
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let store = s.store.clone();
    let checks = Arc::clone(&runs);
    let answers = race(RACERS, move |n| {
        let (store, check) = (
            Arc::clone(&store),
            counted_check(&checks, right, &format!("login-{n}")),
        );
        async move {
            store
                .answer_challenge("c", 5, None, check, NOW)
                .await
                .unwrap()
        }
    })
    .await;
    let runs = runs.load(Ordering::SeqCst);
    (answers, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_answers_is_checked_at_most_the_maximum_of_attempts() {
    let (answers, runs) = answer_burst(false).await;
    assert_eq!(runs, 5, "{answers:?}");
    let mut failures: Vec<u32> = answers
        .iter()
        .filter_map(|a| match a {
            Answered::Wrong { failures } => Some(*failures),
            _ => None,
        })
        .collect();
    failures.sort_unstable();
    assert_eq!(failures, [1, 2, 3, 4, 5], "{answers:?}");
    // The rest were refused before their check: the challenge had had its attempts.
    assert!(answers.iter().all(|a| matches!(
        a,
        Answered::Wrong { .. } | Answered::NotClaimed(AttemptClaim::ChallengeDead { .. })
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_right_answers_completes_one_login_and_checks_no_more_than_the_maximum() {
    let (answers, runs) = answer_burst(true).await;
    let completed = answers
        .iter()
        .filter(|a| {
            matches!(
                a,
                Answered::Proved {
                    completion: Completion::Completed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(completed, 1, "{answers:?}");
    assert!(runs <= 5, "{answers:?}");
    // The others found the challenge spent, before their check or after it.
    assert!(answers.iter().all(|a| matches!(
        a,
        Answered::Proved { .. }
            | Answered::NotClaimed(AttemptClaim::ChallengeGone)
            | Answered::NotClaimed(AttemptClaim::ChallengeDead { .. })
    )));
    assert!(answers.iter().all(|a| !matches!(
        a,
        Answered::Proved {
            completion: Completion::FactorRefused,
            ..
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_answer_hands_its_window_claim_back_and_a_wrong_one_keeps_it() {
    let s = store().await;
    user(&*s, "ann").await;
    for id in ["c1", "c2", "c3"] {
        s.create_challenge(&challenge(id, "ann"), 3, 5, &[], NOW)
            .await
            .unwrap();
    }
    // A window of one failure: a right answer leaves it empty, a wrong one fills it.
    let window = WindowLimit {
        key: "mfa-user:ann".into(),
        limit: 1,
        window_seconds: 900,
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let answer = |id: &'static str, right: bool, token: &'static str| {
        let check = counted_check(&runs, right, token);
        s.answer_challenge(id, 5, Some(&window), check, NOW)
    };
    let right = answer("c1", true, "login-1").await.unwrap();
    assert!(
        matches!(
            right,
            Answered::Proved {
                failures: 1,
                completion: Completion::Completed,
                ..
            }
        ),
        "{right:?}"
    );
    let wrong = answer("c2", false, "login-2").await.unwrap();
    assert!(
        matches!(wrong, Answered::Wrong { failures: 1 }),
        "{wrong:?}"
    );
    let throttled = answer("c3", true, "login-3").await.unwrap();
    assert!(
        matches!(
            throttled,
            Answered::NotClaimed(AttemptClaim::UserThrottled { .. })
        ),
        "{throttled:?}"
    );
    // The throttled answer was never checked; only the first login's session exists.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_sessions(
        &*s,
        &[("login-1", true), ("login-2", false), ("login-3", false)],
    )
    .await;
}

#[tokio::test]
async fn a_right_answer_whose_factor_is_refused_stays_counted_and_changes_nothing_else() {
    let s = store().await;
    user(&*s, "ann").await;
    // The factor's last accepted step is 100.
    first_totp(&*s, "ann", "phone", &[]).await;
    s.create_challenge(&challenge("c", "ann"), 3, 5, &[], NOW)
        .await
        .unwrap();
    let step = |step: i64, token: &str| -> AnswerCheck {
        let refresh = refresh(token, "ann");
        Box::new(move || {
            Some(Proven {
                claim: FactorClaim::TotpStep {
                    factor_id: "phone".into(),
                    step,
                },
                refresh,
            })
        })
    };
    let window = WindowLimit {
        key: "mfa-user:ann".into(),
        limit: 1,
        window_seconds: 900,
    };
    let replayed = s
        .answer_challenge("c", 5, Some(&window), step(100, "login-1"), NOW)
        .await
        .unwrap();
    assert!(
        matches!(
            replayed,
            Answered::Proved {
                failures: 1,
                completion: Completion::FactorRefused,
                ..
            }
        ),
        "{replayed:?}"
    );
    // Its claim stayed: the user's window of one is full, and the challenge is at its second
    // attempt when the next answer (a later step) completes the login.
    let throttled = s
        .answer_challenge("c", 5, Some(&window), step(101, "login-2"), NOW)
        .await
        .unwrap();
    assert!(
        matches!(
            throttled,
            Answered::NotClaimed(AttemptClaim::UserThrottled { .. })
        ),
        "{throttled:?}"
    );
    // That refusal dropped its transaction uncommitted (the attempt is not counted). On
    // PostgreSQL the store's connection came back with the rollback sent, not idle inside the
    // transaction with the challenge's row locked until its next use.
    if let Some(url) = s.postgres_url() {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let idle_in_transaction: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!(idle_in_transaction, 0);
    }
    let completed = s
        .answer_challenge("c", 5, None, step(101, "login-3"), NOW)
        .await
        .unwrap();
    assert!(
        matches!(
            completed,
            Answered::Proved {
                failures: 2,
                completion: Completion::Completed,
                ..
            }
        ),
        "{completed:?}"
    );
    // Only the completed answer's session was stored.
    assert_sessions(
        &*s,
        &[("login-1", false), ("login-2", false), ("login-3", true)],
    )
    .await;
}

/// Asserts which of these refresh tokens were stored (a stored one rotates).
async fn assert_sessions(s: &dyn Store, expected: &[(&str, bool)]) {
    for (token, stored) in expected {
        let successor = RefreshSuccessor {
            id: format!("{token}-next"),
            token_hash: format!("{token}-next"),
            created_at: NOW,
            expires_at: NOW + 3600,
        };
        let rotated = s
            .rotate_refresh_token(&presented(token), &successor, NOW)
            .await
            .unwrap();
        assert_eq!(
            matches!(rotated, RefreshOutcome::Rotated { .. }),
            *stored,
            "{token}"
        );
    }
}

/// A login's count of the user's live challenges reads that user's rows through the index,
/// however stale the planner's statistics are. PostgreSQL plans a statement from its statistics
/// and a connection keeps the plan: analysed while empty (a new deployment; the clean-up just
/// emptied it), `challenges` looks like a table of no pages, a sequential scan costs nothing,
/// and that plan stayed cached on each connection and read the whole table on every login as
/// the table grew (found in the benchmark's logins: one connection's plan read 6 million rows in
/// 8 seconds). Autovacuum analyses again in time, but it can be off (it is on this machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_login_counts_live_challenges_through_the_index_after_the_table_grew_on_postgres() {
    let (s, mut c) = store_and_postgres().await;
    user(&*s, "ann").await;
    user(&*s, "many").await;
    sqlx::raw_sql("ANALYZE challenges")
        .execute(&mut c)
        .await
        .unwrap();
    // Logins while the table is (and looks) empty: enough for a connection to cache its plan.
    for n in 0..10 {
        s.create_challenge(&challenge(&format!("a{n}"), "ann"), 100, 5, &[], NOW)
            .await
            .unwrap();
    }
    // The table grows by 20,000 rows of another user, with no ANALYZE since.
    sqlx::query(
        "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
         SELECT 'm' || n, 'many', 'h' || n, $1, $1 + 300 FROM generate_series(1, 20000) AS n",
    )
    .bind(NOW)
    .execute(&mut c)
    .await
    .unwrap();
    let (_, read_before, _) = challenge_scans(&mut c).await;
    for n in 0..10 {
        s.create_challenge(&challenge(&format!("b{n}"), "ann"), 100, 5, &[], NOW)
            .await
            .unwrap();
    }
    // A backend reports its counts to the statistics at most once a second when idle: wait
    // until every one of the 20 counts is in them.
    let mut counted = (0, 0, 0);
    for _ in 0..150 {
        counted = challenge_scans(&mut c).await;
        if counted.0 + counted.2 >= 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(counted.0 + counted.2 >= 20, "{counted:?}");
    let read_since = counted.1 - read_before;
    assert!(
        read_since < 20_000,
        "the last 10 logins read {read_since} rows of challenges sequentially"
    );
}

/// Sequential scans of `challenges`, the rows they read, and index scans, as the statistics say.
async fn challenge_scans(c: &mut sqlx::PgConnection) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT seq_scan, seq_tup_read, COALESCE(idx_scan, 0) FROM pg_stat_user_tables
         WHERE relname = 'challenges'",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

/// The same count, when the statistics are older than now: ANALYZE saw challenges that have all
/// expired since, as it has minutes after it ran (a challenge lives 5 minutes). With the values
/// in hand PostgreSQL then estimates that no row passes `expires_at > now`, and walked the small
/// `challenges_by_expiry` index past every live challenge of every user to count one user's:
/// a hundred pages per login at a million accounts (#11). The store plans its statements
/// generically (`plan_cache_mode`), so the count goes through the user's index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_login_counts_live_challenges_through_the_users_index_when_the_statistics_are_older_than_now_on_postgres(
) {
    let (s, mut c) = store_and_postgres().await;
    user(&*s, "ann").await;
    // 20,000 other users, each with a challenge at a time.
    other_users(&mut c).await;
    let many = "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
                SELECT $2 || n, 'u' || n, 'h' || $2 || n, $1, $1 + 300
                FROM generate_series(1, 20000) AS n";
    // What the last ANALYZE saw: challenges that expire at NOW + 300.
    sqlx::query(many)
        .bind(NOW)
        .bind("old")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("ANALYZE users, challenges")
        .execute(&mut c)
        .await
        .unwrap();
    // An hour later: other users' live challenges, made since.
    let later = NOW + 3_600;
    sqlx::query(many)
        .bind(later)
        .bind("live")
        .execute(&mut c)
        .await
        .unwrap();
    let before = index_reads(&mut c).await;
    for n in 0..10 {
        let mut login = challenge(&format!("a{n}"), "ann");
        login.created_at = later;
        login.expires_at = later + 300;
        let created = s
            .create_challenge(&login, 100, 5, &[], later)
            .await
            .unwrap();
        assert!(matches!(created, ChallengeCreated::Created));
    }
    let after = index_reads_once(&mut c, |after| {
        after.by_user_scans - before.by_user_scans >= 10
    })
    .await;
    assert!(
        after.by_user_scans - before.by_user_scans >= 10,
        "the 10 logins' counts went through the user's index: {before:?} → {after:?}"
    );
    let walked = after.by_expiry_entries - before.by_expiry_entries;
    assert!(
        walked < 1_000,
        "10 logins walked {walked} entries of challenges_by_expiry"
    );
}

/// A store on PostgreSQL, and a connection of the test's own to its database.
async fn store_and_postgres() -> (TestStore, sqlx::PgConnection) {
    use sqlx::Connection;
    let s = store().await;
    let url = s.postgres_url().expect("the PostgreSQL run").to_string();
    let c = sqlx::PgConnection::connect(&url).await.unwrap();
    (s, c)
}

/// 20,000 other users, `u1` to `u20000`, inserted directly (the store has no bulk intent for
/// users alone).
async fn other_users(c: &mut sqlx::PgConnection) {
    sqlx::raw_sql(
        "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, created_at)
         SELECT 'u' || n, 'u' || n, 'u' || n, 'u' || n || '@example.com', 'u' || n || '@example.com', 'x', 0
         FROM generate_series(1, 20000) AS n",
    )
    .execute(c)
    .await
    .unwrap();
}

/// The index reads once `reported` holds of them, or after 15 s: a backend reports its counts
/// at most once a second, when idle.
async fn index_reads_once(
    c: &mut sqlx::PgConnection,
    reported: impl Fn(&IndexReads) -> bool,
) -> IndexReads {
    let mut reads = index_reads(c).await;
    for _ in 0..150 {
        if reported(&reads) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        reads = index_reads(c).await;
    }
    reads
}

#[derive(Debug, Clone, Copy)]
struct IndexReads {
    by_user_scans: i64,
    by_key_scans: i64,
    by_expiry_entries: i64,
}

/// Scans of `challenges_by_user` and of the primary key, and entries read from
/// `challenges_by_expiry`, as the statistics say.
async fn index_reads(c: &mut sqlx::PgConnection) -> IndexReads {
    let (by_user_scans, by_key_scans, by_expiry_entries): (i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'challenges_by_user'),
           (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'challenges_pkey'),
           (SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'challenges_by_expiry')",
    )
    .fetch_one(c)
    .await
    .unwrap();
    IndexReads {
        by_user_scans,
        by_key_scans,
        by_expiry_entries,
    }
}

/// The spend of a challenge and the count of an attempt at it, when `challenges` was analysed
/// nearly empty after a mass delete (the clean-up after a backlog; on a busy server, every few
/// minutes): the b-trees keep their pages, the text primary key has more of them per row than
/// the expiry index (whose equal expiries, a busy second's, share entries), and PostgreSQL planned both statements, even generically, as a walk of
/// `challenges_by_expiry` past every live challenge of every user (#11: 100 buffers a spend at
/// a million accounts). Its expiry index is now on `expires_at + 0`, which only the clean-up
/// names, so both find the challenge by its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_challenge_is_spent_through_its_key_when_the_table_was_analysed_nearly_empty_on_postgres()
{
    let (s, mut c) = store_and_postgres().await;
    user(&*s, "ann").await;
    other_users(&mut c).await;
    // Ids as the server makes them (a token's SHA-256, in base64), so the primary key is as
    // large per row as in a deployment.
    let many = "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
                SELECT encode(sha256(($2 || n)::bytea), 'base64'), 'u' || (n % 20000 + 1),
                       'h' || $2 || n, $1, $1 + 300
                FROM generate_series(1, $3) AS n";
    // A backlog of 100,000 challenges of a busy minute, expired and deleted by the clean-up;
    // then 30 live ones, and the table analysed.
    sqlx::query(many)
        .bind(NOW - 3_600)
        .bind("old")
        .bind(100_000)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("DELETE FROM challenges")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(many)
        .bind(NOW)
        .bind("live")
        .bind(30)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE challenges")
        .execute(&mut c)
        .await
        .unwrap();
    let before = index_reads(&mut c).await;
    for n in 0..10 {
        let id = format!("a{n}");
        s.create_challenge(&challenge(&id, "ann"), 100, 5, &[], NOW)
            .await
            .unwrap();
        let claimed = s.claim_challenge_attempt(&id, 5, None, NOW).await.unwrap();
        assert!(
            matches!(claimed, AttemptClaim::Claimed { .. }),
            "{claimed:?}"
        );
        let completed = s
            .complete_challenge(
                &id,
                FactorClaim::EmailCode,
                &refresh(&format!("login-{n}"), "ann"),
                None,
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(completed, Completion::Completed);
    }
    let after = index_reads_once(&mut c, |after| {
        after.by_key_scans - before.by_key_scans >= 20
    })
    .await;
    assert!(
        after.by_key_scans - before.by_key_scans >= 20,
        "the 10 attempts and 10 spends went through the primary key: {before:?} → {after:?}"
    );
    let walked = after.by_expiry_entries - before.by_expiry_entries;
    assert!(
        walked < 100,
        "10 attempts and spends walked {walked} entries of challenges_by_expiry"
    );
}

/// The clean-up of spent challenges when `challenges` was analysed with none spent, as it is
/// after every clean-up on a busy server (#11): one batch reads one batch's entries of
/// `challenges_spent`. Planned on those statistics the statement had been a bitmap scan of the
/// whole index and a sort, each batch reading every spent challenge there was; the clean-up now
/// plans its batches with no sort and no bitmap scan (`CLEANUP_PLANNER_SETTINGS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: MFAGATE_TEST_BACKEND=postgres cargo nextest run --workspace --profile postgres --run-ignored all"]
async fn a_batch_of_the_clean_up_reads_one_batch_of_spent_challenges_on_postgres() {
    let (s, mut c) = store_and_postgres().await;
    other_users(&mut c).await;
    // A busy minute's logins, analysed before any was spent.
    let made = NOW - 60;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
         SELECT encode(sha256(('spent' || n)::bytea), 'base64'), 'u' || (n % 20000 + 1),
                'h' || n, {made}, {made} + 300
         FROM generate_series(1, 20000) AS n;
         ANALYZE challenges"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    // All spent since.
    sqlx::query("UPDATE challenges SET spent_at = $1 - (hashtext(id) & 31)")
        .bind(NOW - 1)
        .execute(&mut c)
        .await
        .unwrap();
    async fn read(c: &mut sqlx::PgConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'challenges_spent'",
        )
        .fetch_one(c)
        .await
        .unwrap()
    }
    let before = read(&mut c).await;
    let deleted = s.delete_expired(NOW, None, 100).await.unwrap();
    assert_eq!(deleted, 100, "one batch of spent challenges");
    let mut after = read(&mut c).await;
    for _ in 0..150 {
        if after > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = read(&mut c).await;
    }
    assert!(after > before, "the clean-up's reads were not reported");
    assert!(
        after - before < 1_000,
        "one batch of 100 read {} entries of challenges_spent (20,000 spent)",
        after - before
    );
}
