//! TokenStore: a refresh token rotates once; a second use revokes the whole family.

use std::sync::Arc;

use mfagate_core::store::*;

use crate::backend::*;

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
