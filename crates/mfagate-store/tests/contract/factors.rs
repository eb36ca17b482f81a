//! FactorStore: pending and verified factors, names, the maximum, replay per factor, removal.

use std::sync::Arc;

use mfagate_core::store::*;

use crate::backend::*;
use mfagate_core::Method;

#[tokio::test]
async fn a_pending_factor_is_listed_once_verified_and_names_are_unique_per_user() {
    let s = store().await;
    user(&*s, "ann").await;
    user(&*s, "bob").await;
    assert_eq!(pending(&*s, "ann", "f1", "Phone").await, FactorBegun::Begun);
    assert!(s.factors("ann").await.unwrap().is_empty());
    let found = s.pending_factor("ann", "f1", NOW).await.unwrap().unwrap();
    assert!(!found.verified);
    assert!(
        s.pending_factor("bob", "f1", NOW).await.unwrap().is_none(),
        "another user's"
    );
    assert!(
        s.pending_factor("ann", "f1", NOW + 600)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(
        s.verify_factor(&verification("ann", "f1", 10), NOW)
            .await
            .unwrap(),
        FactorVerified::Verified { first: true }
    );
    let listed = s.factors("ann").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].verified);
    assert_eq!(listed[0].last_step, Some(100));
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 2);
    // Verified once: a second verification finds nothing pending.
    assert_eq!(
        s.verify_factor(&verification("ann", "f1", 10), NOW)
            .await
            .unwrap(),
        FactorVerified::Gone
    );
    // The name is taken for ann (case-insensitively), free for bob.
    assert_eq!(
        pending(&*s, "ann", "f2", "PHONE").await,
        FactorBegun::NameTaken
    );
    assert_eq!(pending(&*s, "bob", "f3", "Phone").await, FactorBegun::Begun);
    // Beginning again under a pending name replaces the pending one.
    assert_eq!(pending(&*s, "bob", "f4", "phone").await, FactorBegun::Begun);
    assert!(s.pending_factor("bob", "f3", NOW).await.unwrap().is_none());
    assert_eq!(
        s.verify_factor(&verification("bob", "f4", 10), NOW)
            .await
            .unwrap(),
        FactorVerified::Verified { first: true }
    );
    // A second factor brings no new recovery codes.
    assert_eq!(
        pending(&*s, "ann", "f5", "Tablet").await,
        FactorBegun::Begun
    );
    assert_eq!(
        s.verify_factor(&verification("ann", "f5", 10), NOW)
            .await
            .unwrap(),
        FactorVerified::Verified { first: false }
    );
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 2);
    assert_eq!(s.factors("ann").await.unwrap().len(), 2);
    // Renames keep names unique.
    assert_eq!(
        s.rename_factor("ann", "f5", "phone").await.unwrap(),
        FactorRenamed::NameTaken
    );
    assert_eq!(
        s.rename_factor("bob", "f5", "Mine").await.unwrap(),
        FactorRenamed::NotFound
    );
    let FactorRenamed::Renamed(renamed) = s.rename_factor("ann", "f5", "Old tablet").await.unwrap()
    else {
        panic!("renamed");
    };
    assert_eq!(renamed.name, "Old tablet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_verifications_past_the_maximum_only_the_room_left_is_granted() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "f0", &["k.a"]).await;
    for n in 0..RACERS {
        assert_eq!(
            pending(&*s, "ann", &format!("p{n}"), &format!("device {n}")).await,
            FactorBegun::Begun
        );
    }
    let store = s.store.clone();
    let answers = race(RACERS, move |n| {
        let store = Arc::clone(&store);
        async move {
            let mut v = verification("ann", &format!("p{n}"), 2);
            v.refresh = refresh(&format!("race-{n}"), "ann");
            store.verify_factor(&v, NOW).await.unwrap()
        }
    })
    .await;
    let granted = answers
        .iter()
        .filter(|a| matches!(a, FactorVerified::Verified { .. }))
        .count();
    assert_eq!(granted, 1, "{answers:?}");
    assert!(answers.iter().all(|a| matches!(
        a,
        FactorVerified::Verified { first: false } | FactorVerified::TooMany
    )));
    assert_eq!(s.factors("ann").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_totp_step_is_accepted_once_per_factor_under_a_race() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &[]).await;
    pending(&*s, "ann", "tablet", "Tablet").await;
    s.verify_factor(&verification("ann", "tablet", 10), NOW)
        .await
        .unwrap();
    for factor in ["phone", "tablet"] {
        let store = s.store.clone();
        let accepted = race(RACERS, move |_| {
            let store = Arc::clone(&store);
            async move {
                store
                    .accept_totp_step("ann", factor, 200, NOW)
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(accepted.iter().filter(|a| **a).count(), 1, "{factor}");
        // Never again, nor an earlier step.
        assert!(!s.accept_totp_step("ann", factor, 200, NOW).await.unwrap());
        assert!(!s.accept_totp_step("ann", factor, 150, NOW).await.unwrap());
    }
    // Another user's factor id is not this user's.
    user(&*s, "bob").await;
    assert!(!s.accept_totp_step("bob", "phone", 300, NOW).await.unwrap());
}

#[tokio::test]
async fn the_last_factor_takes_the_recovery_codes_with_it_unless_it_must_stay() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &["k.a", "k.b"]).await;
    pending(&*s, "ann", "tablet", "Tablet").await;
    s.verify_factor(&verification("ann", "tablet", 10), NOW)
        .await
        .unwrap();
    assert_eq!(
        s.remove_factor("ann", "tablet", true, None).await.unwrap(),
        FactorRemoved::Removed { last: false }
    );
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 2);
    assert_eq!(
        s.remove_factor("ann", "phone", true, None).await.unwrap(),
        FactorRemoved::LastKept
    );
    assert_eq!(
        s.remove_factor("ann", "tablet", false, None).await.unwrap(),
        FactorRemoved::NotFound
    );
    // While a factor is held, the codes can be replaced.
    assert!(s
        .replace_recovery_codes("ann", &["k.c".into(), "k.d".into()])
        .await
        .unwrap());
    assert_eq!(
        s.remove_factor("ann", "phone", false, Some(Method::Email))
            .await
            .unwrap(),
        FactorRemoved::Removed { last: true }
    );
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 0);
    let ann = s.user_by_id("ann").await.unwrap().unwrap();
    assert!(!ann.has_totp);
    assert_eq!(ann.preferred_method, Some(Method::Email), "the fallback");
    // With no factor left, new codes are refused.
    assert!(!s
        .replace_recovery_codes("ann", &["k.d".into()])
        .await
        .unwrap());
}

#[tokio::test]
async fn removing_every_totp_factor_names_them_and_ends_the_codes() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &["k.a"]).await;
    pending(&*s, "ann", "tablet", "Tablet").await;
    s.verify_factor(&verification("ann", "tablet", 10), NOW)
        .await
        .unwrap();
    pending(&*s, "ann", "spare", "Spare").await;
    let mut removed = s.remove_totp_factors("ann", None).await.unwrap();
    removed.sort();
    assert_eq!(removed, ["phone", "tablet"], "verified ones are named");
    assert!(s
        .pending_factor("ann", "spare", NOW)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 0);
    assert_eq!(
        s.user_by_id("ann").await.unwrap().unwrap().preferred_method,
        None
    );
    assert!(s.remove_totp_factors("ann", None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_password_change_ends_pending_enrolments_and_a_reset_every_factor() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &["k.a"]).await;
    pending(&*s, "ann", "tablet", "Tablet").await;
    let change = AccountChange::SetPassword {
        hash: "$argon2id$new".into(),
        verify_email: false,
    };
    assert!(s.change_account("ann", &change, None, NOW).await.unwrap());
    assert!(s
        .pending_factor("ann", "tablet", NOW)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.verify_factor(&verification("ann", "tablet", 10), NOW)
            .await
            .unwrap(),
        FactorVerified::Gone
    );
    assert_eq!(
        s.factors("ann").await.unwrap().len(),
        1,
        "verified ones stay"
    );
    assert!(s
        .change_account("ann", &AccountChange::ResetMfa, None, NOW)
        .await
        .unwrap());
    assert!(s.factors("ann").await.unwrap().is_empty());
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 0);
    assert!(!s.user_by_id("ann").await.unwrap().unwrap().has_totp);
}

#[tokio::test]
async fn enrolments_in_progress_are_capped_too() {
    let s = store().await;
    user(&*s, "ann").await;
    let begin = |id: &'static str, name: &'static str| {
        let store = s.store.clone();
        async move {
            store
                .begin_factor(
                    &NewFactor {
                        id: id.into(),
                        user_id: "ann".into(),
                        kind: mfagate_core::FactorKind::Totp,
                        name: name.into(),
                        secret_sealed: Some("k.x".into()),
                        created_at: NOW,
                        expires_at: NOW + 600,
                    },
                    10,
                    2,
                    None,
                    NOW,
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("a", "A").await, FactorBegun::Begun);
    assert_eq!(begin("b", "B").await, FactorBegun::Begun);
    assert_eq!(begin("c", "C").await, FactorBegun::TooMany);
    // Beginning again under a pending name replaces it, within the cap.
    assert_eq!(begin("b2", "b").await, FactorBegun::Begun);
    assert!(s.pending_factor("ann", "b", NOW).await.unwrap().is_none());
}
