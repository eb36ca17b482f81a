//! UserStore and the one-statement account intents.

use std::sync::Arc;

use mfagate_core::store::*;
use mfagate_core::StoreError;

use crate::backend::*;
use mfagate_core::Method;

#[tokio::test]
async fn names_and_addresses_are_unique_case_insensitively_and_across_each_other() {
    let s = store().await;
    user(&*s, "ann").await;
    for (username, email) in [
        ("ANN", "new@example.com"),
        ("new", "Ann@Example.com"),
        ("ann@example.com", "x@example.com"),
    ] {
        let taken = s
            .create_user(&NewUser {
                id: format!("id-{username}"),
                username: username.into(),
                email: email.into(),
                password_hash: "$argon2id$test".into(),
                is_admin: false,
                created_at: NOW,
            })
            .await;
        assert!(
            matches!(&taken, Err(StoreError::Conflict(what)) if what.contains("username or e-mail")),
            "{username}: {taken:?}"
        );
    }
    assert_eq!(
        s.user_by_login("ANN@EXAMPLE.COM".to_lowercase().as_str())
            .await
            .unwrap()
            .unwrap()
            .id,
        "ann"
    );
}

#[tokio::test]
async fn the_preferred_method_and_the_email_switch_change_together() {
    let s = store().await;
    user(&*s, "ann").await;
    assert!(
        !s.choose_method("ann", Some(Method::Totp), None)
            .await
            .unwrap(),
        "no TOTP factor"
    );
    assert!(s
        .choose_method("ann", Some(Method::Email), Some(true))
        .await
        .unwrap());
    let ann = s.user_by_id("ann").await.unwrap().unwrap();
    assert_eq!(
        (ann.preferred_method, ann.email_otp),
        (Some(Method::Email), true)
    );
    first_totp(&*s, "ann", "phone", &[]).await;
    assert!(s
        .choose_method("ann", Some(Method::Totp), None)
        .await
        .unwrap());
    let ann = s.user_by_id("ann").await.unwrap().unwrap();
    assert_eq!(
        (ann.preferred_method, ann.email_otp),
        (Some(Method::Totp), true)
    );
    assert!(s.choose_method("ann", None, Some(false)).await.unwrap());
    let ann = s.user_by_id("ann").await.unwrap().unwrap();
    assert_eq!((ann.preferred_method, ann.email_otp), (None, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verification_key_verifies_the_address_once_under_a_race() {
    let s = store().await;
    user(&*s, "ann").await;
    s.create_email_key("key", "ann", KeyPurpose::Verification, NOW + 60)
        .await
        .unwrap();
    s.create_email_key("reset", "ann", KeyPurpose::PasswordReset, NOW + 60)
        .await
        .unwrap();
    assert_eq!(
        s.verify_address_with_key("reset", NOW).await.unwrap(),
        None,
        "a key of another purpose"
    );
    let store = s.store.clone();
    let used = race(RACERS, move |_| {
        let store = Arc::clone(&store);
        async move { store.verify_address_with_key("key", NOW).await.unwrap() }
    })
    .await;
    assert_eq!(
        used.iter().filter(|u| u.as_deref() == Some("ann")).count(),
        1
    );
    assert!(s.user_by_id("ann").await.unwrap().unwrap().email_verified);
}

#[tokio::test]
async fn a_disable_ends_every_credential_in_one_change() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &["k.a"]).await;
    s.insert_refresh_token(&refresh("r0", "ann")).await.unwrap();
    s.create_setup_token("setup", "ann", NOW + 60)
        .await
        .unwrap();
    assert!(s
        .change_account("ann", &AccountChange::Disable, None, NOW)
        .await
        .unwrap());
    let successor = RefreshSuccessor {
        id: "r1".into(),
        token_hash: "r1".into(),
        created_at: NOW,
        expires_at: NOW + 60,
    };
    assert_eq!(
        s.rotate_refresh_token(&presented("r0"), &successor, NOW)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(s.setup_token_user("setup", NOW).await.unwrap(), None);
    assert!(s.user_by_id("ann").await.unwrap().unwrap().disabled);
    // A change that needs a key does nothing without a live one.
    assert!(!s
        .change_account(
            "ann",
            &AccountChange::SetPassword {
                hash: "$argon2id$x".into(),
                verify_email: true
            },
            Some(("no-such-key", KeyPurpose::PasswordReset)),
            NOW,
        )
        .await
        .unwrap());
}

#[tokio::test]
async fn a_login_candidate_comes_with_whether_a_recovery_code_is_unused() {
    let s = store().await;
    let ann = user(&*s, "ann").await;
    assert!(s.login_candidate("nobody").await.unwrap().is_none());
    let found = s.login_candidate("ann").await.unwrap().expect("ann");
    assert_eq!(found.user, ann);
    assert!(!found.has_unused_recovery_codes);

    first_totp(&*s, "ann", "phone", &["k.a", "k.b"]).await;
    // Another user's codes are theirs.
    user(&*s, "bob").await;
    first_totp(&*s, "bob", "bobs", &["k.c"]).await;
    let found = s
        .login_candidate("ann@example.com")
        .await
        .unwrap()
        .expect("by address");
    assert_eq!(found.user.id, "ann");
    assert!(found.user.has_totp);
    assert!(found.has_unused_recovery_codes);

    for code in s.unused_recovery_codes("ann").await.unwrap() {
        assert!(s.consume_recovery_code("ann", code.id, NOW).await.unwrap());
    }
    assert!(
        !s.login_candidate("ann")
            .await
            .unwrap()
            .unwrap()
            .has_unused_recovery_codes
    );
    assert!(
        s.login_candidate("bob")
            .await
            .unwrap()
            .unwrap()
            .has_unused_recovery_codes
    );
}

/// Many reads at once, more than the store keeps connections for (PostgreSQL's `own_connections.rs`),
/// each answered with its own row, and a change committed before a read is seen by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_each_get_their_own_user_and_see_what_was_committed() {
    let s = store().await;
    for n in 0..8 {
        user(&*s, &format!("u{n}")).await;
    }
    let store = s.store.clone();
    let read = race(64, move |n| {
        let store = Arc::clone(&store);
        async move {
            let id = format!("u{}", n % 10);
            let by_id = store.user_by_id(&id).await.unwrap().map(|u| u.id);
            let by_login = store.login_candidate(&id).await.unwrap().map(|c| c.user.id);
            (id, by_id, by_login)
        }
    })
    .await;
    for (id, by_id, by_login) in read {
        // u8 and u9 do not exist: nothing, not another user's row.
        let expected = (id.as_str() < "u8").then(|| id.clone());
        assert_eq!(by_id, expected, "{id}");
        assert_eq!(by_login, expected, "{id}");
    }
    assert!(s
        .change_account("u3", &AccountChange::Disable, None, NOW)
        .await
        .unwrap());
    let after = race(16, {
        let store = s.store.clone();
        move |_| {
            let store = Arc::clone(&store);
            async move { store.user_by_id("u3").await.unwrap().unwrap().disabled }
        }
    })
    .await;
    assert!(after.iter().all(|d| *d), "{after:?}");
}

/// A burst of calls of every kind (reads, one-statement writes, transactions, a conflict) gets
/// each its right answer, and on PostgreSQL the store keeps to the connections it is given
/// (`MFAGATE_DATABASE_MAX_CONNECTIONS`, 10 by default): every statement runs on the store's own
/// connections, none on a second set beside them (`own_connections.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_every_kind_of_call_keeps_to_the_connection_count() {
    let s = store().await;
    for n in 0..8 {
        user(&*s, &format!("u{n}")).await;
        first_totp(&*s, &format!("u{n}"), &format!("f{n}"), &["a", "b"]).await;
    }
    let store = s.store.clone();
    let answers = race(64, move |n| {
        let store = Arc::clone(&store);
        async move {
            let id = format!("u{}", n % 8);
            match n % 8 {
                0 => store.user_by_id(&id).await.unwrap().is_some(),
                1 => store.factors(&id).await.unwrap().len() == 1,
                2 => store.count_unused_recovery_codes(&id).await.unwrap() == 2,
                3 => store.live_sessions(&id, NOW).await.unwrap().len() == 1,
                4 => {
                    let key = format!("k{n}");
                    store
                        .create_email_key(&key, &id, KeyPurpose::Verification, NOW + 60)
                        .await
                        .unwrap();
                    store
                        .email_key_user(&key, KeyPurpose::Verification, NOW)
                        .await
                        .unwrap()
                        == Some(id)
                }
                5 => store
                    .replace_recovery_codes(&id, &["c".to_string(), "d".to_string()])
                    .await
                    .unwrap(),
                6 => matches!(
                    store
                        .create_user(&NewUser {
                            id: format!("dup{n}"),
                            username: id.clone(),
                            email: format!("dup{n}@example.com"),
                            password_hash: "$argon2id$test".into(),
                            is_admin: false,
                            created_at: NOW,
                        })
                        .await,
                    Err(StoreError::Conflict(_))
                ),
                _ => store
                    .recent_audit_events(Some(&id), 10)
                    .await
                    .unwrap()
                    .is_empty(),
            }
        }
    })
    .await;
    assert!(answers.iter().all(|right| *right), "{answers:?}");
    if let Some(url) = s.postgres_url() {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let connections: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'mfagate'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert!(
            (1..=10).contains(&connections),
            "{connections} connections for a store of 10"
        );
    }
}
