//! TokenStore: a refresh token rotates once; a second use revokes the whole family.

use std::sync::Arc;

use mfagate_core::store::*;

use crate::backend::*;
use mfagate_store::testing;

fn successor(hash: &str) -> RefreshSuccessor {
    RefreshSuccessor {
        id: hash.into(),
        token_hash: hash.into(),
        created_at: NOW,
        expires_at: NOW + 3600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_token_rotates_once_under_a_race_and_the_reuse_ends_the_family() {
    let s = store().await;
    user(&*s, "ann").await;
    s.insert_refresh_token(&refresh("r0", "ann")).await.unwrap();
    let store = s.store.clone();
    let outcomes = race(RACERS, move |n| {
        let store = Arc::clone(&store);
        async move {
            store
                .rotate_refresh_token(&presented("r0"), &successor(&format!("r1-{n}")), NOW)
                .await
                .unwrap()
        }
    })
    .await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, RefreshOutcome::Rotated { .. }))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        RefreshOutcome::Rotated { .. } | RefreshOutcome::Reused { .. }
    )));
    // Every loser was a reuse, which revoked the family: the winner's successor is dead too.
    assert_eq!(
        s.rotate_refresh_token(
            &presented(&format!("r1-{}", winners[0])),
            &successor("r2"),
            NOW
        )
        .await
        .unwrap(),
        RefreshOutcome::Invalid
    );
}

#[tokio::test]
async fn a_rotation_keeps_the_family_its_amr_and_auth_time() {
    let s = store().await;
    user(&*s, "ann").await;
    s.insert_refresh_token(&refresh("r0", "ann")).await.unwrap();
    let RefreshOutcome::Rotated {
        user_id,
        family_id,
        amr,
        auth_time,
    } = s
        .rotate_refresh_token(&presented("r0"), &successor("r1"), NOW + 10)
        .await
        .unwrap()
    else {
        panic!("rotated");
    };
    assert_eq!(
        (
            user_id.as_str(),
            family_id.as_str(),
            amr.as_str(),
            auth_time
        ),
        ("ann", "family-r0", "pwd mfa otp", NOW)
    );
    assert_eq!(
        s.revoke_refresh_family(&presented("r1"), NOW)
            .await
            .unwrap()
            .as_deref(),
        Some("ann")
    );
    assert_eq!(
        s.rotate_refresh_token(&presented("r1"), &successor("r2"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        s.rotate_refresh_token(&presented("unknown"), &successor("r3"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}

/// No intent deletes a user, but an operator may (`DELETE FROM users`): their refresh tokens go
/// with their sessions (the cascade `users → sessions → refresh_tokens`, migration "tokens
/// through sessions"), and no one else's do.
#[tokio::test]
async fn deleting_a_user_deletes_their_tokens_through_their_sessions() {
    let s = store().await;
    user(&*s, "ann").await;
    user(&*s, "bob").await;
    first_totp(&*s, "ann", "phone", &[]).await;
    s.insert_refresh_token(&refresh("a0", "ann")).await.unwrap();
    s.insert_refresh_token(&refresh("b0", "bob")).await.unwrap();
    let tokens_of =
        |user: &str| format!("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = '{user}'");
    assert_eq!(
        testing::select_integer(&s.url, &tokens_of("ann")).await,
        Ok(2)
    );

    testing::execute(&s.url, "DELETE FROM users WHERE id = 'ann'")
        .await
        .unwrap();
    assert_eq!(
        testing::select_integer(&s.url, &tokens_of("ann")).await,
        Ok(0)
    );
    assert_eq!(
        testing::select_integer(
            &s.url,
            "SELECT COUNT(*) FROM sessions WHERE user_id = 'ann'"
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        testing::select_integer(&s.url, &tokens_of("bob")).await,
        Ok(1)
    );
    assert!(matches!(
        s.rotate_refresh_token(&presented("b0"), &successor("b1"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
}

/// A database of the release before tokens belonged to sessions upgrades: a token whose
/// session is gone (only an expired one can be) is dropped, a live one carries on, and from then
/// a token cannot be stored without its session.
#[tokio::test]
async fn the_upgrade_to_tokens_through_sessions_drops_tokens_without_a_session() {
    let s = opened(|url| async move {
        testing::migrate_before(&url, "tokens through sessions")
            .await
            .unwrap();
        testing::execute(
            &url,
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash,
                                created_at)
             VALUES ('ann', 'ann', 'ann', 'ann@example.com', 'ann@example.com', '$argon2id$test',
                     1);
             INSERT INTO sessions (id, user_id, amr, created_at, last_used_at, expires_at)
             VALUES ('family-live', 'ann', 'pwd mfa otp', 1, 1, 4000000000);
             INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, amr, created_at,
                                         expires_at)
             VALUES ('live', 'live', 'ann', 'family-live', 'pwd mfa otp', 1, 4000000000),
                    ('orphan', 'orphan', 'ann', 'family-gone', 'pwd mfa otp', 1, 2)",
        )
        .await
        .unwrap();
    })
    .await;
    assert_eq!(
        testing::select_integer(
            &s.url,
            "SELECT COUNT(*) FROM refresh_tokens WHERE id = 'orphan'"
        )
        .await,
        Ok(0)
    );
    assert!(matches!(
        s.rotate_refresh_token(&presented("live"), &successor("next"), NOW)
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
    let without_session = testing::execute(
        &s.url,
        "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, amr, created_at,
                                     expires_at)
         VALUES ('stray', 'stray', 'ann', 'family-none', 'pwd', 1, 4000000000)",
    )
    .await;
    assert!(
        without_session
            .as_ref()
            .is_err_and(|e| e.to_lowercase().contains("foreign key")),
        "{without_session:?}"
    );
}
