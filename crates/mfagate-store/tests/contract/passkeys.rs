//! Passkeys in the store: a pending enrolment's ceremony is taken once, a credential id is
//! enrolled once across users, the signature counter only grows, a passkey token works once.
//! Each one-time thing raced 16 ways.

use std::sync::Arc;

use mfagate_core::store::*;
use mfagate_core::FactorKind;

use crate::backend::*;

async fn pending_passkey(store: &dyn Store, user: &str, id: &str) -> FactorBegun {
    pending_of_kind(store, user, id, &format!("Key {id}"), FactorKind::Webauthn).await
}

fn passkey_verification(user: &str, factor: &str, credential: &str) -> FactorVerification {
    FactorVerification {
        accepted_step: None,
        passkey: Some(NewPasskey {
            credential_id: credential.into(),
            record_sealed: "k.record".into(),
            transports: "[\"internal\"]".into(),
            sign_count: 5,
        }),
        ..verification(user, factor, 10)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enrolment_ceremony_is_taken_once_and_a_credential_is_enrolled_once() {
    let held = store().await;
    let s: Arc<dyn Store> = held.store.clone();
    user(&*s, "ann").await;
    user(&*s, "bob").await;
    assert_eq!(pending_passkey(&*s, "ann", "p1").await, FactorBegun::Begun);
    // Another user's, or expired: nothing to take.
    assert!(s
        .take_enrolment_state("bob", "p1", NOW)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .take_enrolment_state("ann", "p1", NOW + 600)
        .await
        .unwrap()
        .is_none());
    let taken = race(16, |_| {
        let s = s.clone();
        async move { s.take_enrolment_state("ann", "p1", NOW).await.unwrap() }
    })
    .await;
    let won: Vec<_> = taken.into_iter().flatten().collect();
    assert_eq!(won, ["k.p1"], "exactly one caller gets the ceremony");

    assert_eq!(
        s.verify_factor(&passkey_verification("ann", "p1", "Y3JlZA"), NOW)
            .await
            .unwrap(),
        FactorVerified::Verified { first: true }
    );
    let found = s.passkey_by_credential("Y3JlZA").await.unwrap().unwrap();
    assert_eq!((found.user_id.as_str(), found.sign_count), ("ann", 5));
    assert!(s.user_by_id("ann").await.unwrap().unwrap().has_webauthn);
    // The same credential for bob: refused, and nothing of his changed.
    assert_eq!(pending_passkey(&*s, "bob", "p2").await, FactorBegun::Begun);
    assert_eq!(
        s.verify_factor(&passkey_verification("bob", "p2", "Y3JlZA"), NOW)
            .await
            .unwrap(),
        FactorVerified::CredentialTaken
    );
    assert!(s.factors("bob").await.unwrap().is_empty());
    assert_eq!(s.count_unused_recovery_codes("bob").await.unwrap(), 0);
    // Removing the last passkey: the preference falls back, the codes go.
    assert_eq!(
        s.user_by_id("ann").await.unwrap().unwrap().preferred_method,
        Some(mfagate_core::Method::Webauthn)
    );
    assert_eq!(
        s.remove_factor("ann", "p1", false, None).await.unwrap(),
        FactorRemoved::Removed { last: true }
    );
    let ann = s.user_by_id("ann").await.unwrap().unwrap();
    assert_eq!(ann.preferred_method, None);
    assert!(!ann.has_webauthn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_signature_counter_only_grows_and_one_of_a_burst_claims_it() {
    let held = store().await;
    let s: Arc<dyn Store> = held.store.clone();
    user(&*s, "ann").await;
    pending_passkey(&*s, "ann", "p1").await;
    s.verify_factor(&passkey_verification("ann", "p1", "Y3JlZA"), NOW)
        .await
        .unwrap();
    assert!(
        !s.accept_sign_count("ann", "p1", 5, NOW).await.unwrap(),
        "equal"
    );
    assert!(
        !s.accept_sign_count("ann", "p1", 4, NOW).await.unwrap(),
        "back"
    );
    assert!(
        !s.accept_sign_count("bob", "p1", 9, NOW).await.unwrap(),
        "not bob's"
    );
    let claimed = race(16, |_| {
        let s = s.clone();
        async move { s.accept_sign_count("ann", "p1", 6, NOW).await.unwrap() }
    })
    .await;
    assert_eq!(claimed.iter().filter(|c| **c).count(), 1);
    let factor = s.passkey_by_credential("Y3JlZA").await.unwrap().unwrap();
    assert_eq!(factor.sign_count, 6);
    assert_eq!(factor.last_used_at, Some(NOW));
}

#[tokio::test]
async fn a_key_without_a_counter_stays_at_zero() {
    let s = store().await;
    user(&*s, "ann").await;
    pending_passkey(&*s, "ann", "p1").await;
    let mut zero = passkey_verification("ann", "p1", "emVybw");
    if let Some(passkey) = zero.passkey.as_mut() {
        passkey.sign_count = 0;
    }
    s.verify_factor(&zero, NOW).await.unwrap();
    for _ in 0..3 {
        assert!(s.accept_sign_count("ann", "p1", 0, NOW).await.unwrap());
    }
    assert!(s.accept_sign_count("ann", "p1", 1, NOW).await.unwrap());
    assert!(
        !s.accept_sign_count("ann", "p1", 0, NOW).await.unwrap(),
        "began counting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_passkey_token_is_taken_once_and_not_after_it_expires() {
    let held = store().await;
    let s: Arc<dyn Store> = held.store.clone();
    s.create_passkey_token("t1", "k.state", NOW + 300, NOW)
        .await
        .unwrap();
    let taken = race(16, |_| {
        let s = s.clone();
        async move { s.take_passkey_token("t1", NOW).await.unwrap() }
    })
    .await;
    assert_eq!(taken.into_iter().flatten().collect::<Vec<_>>(), ["k.state"]);
    s.create_passkey_token("t2", "k.state", NOW + 300, NOW)
        .await
        .unwrap();
    assert!(s
        .take_passkey_token("t2", NOW + 300)
        .await
        .unwrap()
        .is_none());
    // The clean-up removes what expired.
    assert!(s.delete_expired(NOW + 301, None, 100).await.unwrap() >= 1);
}

/// A user read says which kinds of verified factor the user has, after every change of them:
/// a pending factor counts for nothing, each kind is told apart, and removing one kind leaves
/// the other. (SQLite keeps these flags on the user's row by triggers; this is their proof.)
#[tokio::test]
async fn a_user_read_tells_the_kinds_of_verified_factor_after_every_change() {
    let s = store().await;
    user(&*s, "ann").await;
    assert_eq!(kinds(&*s).await, (false, false));
    assert_eq!(pending_passkey(&*s, "ann", "p1").await, FactorBegun::Begun);
    pending(&*s, "ann", "t1", "Phone").await;
    assert_eq!(
        kinds(&*s).await,
        (false, false),
        "pending counts for nothing"
    );
    s.verify_factor(&passkey_verification("ann", "p1", "Y3JlZA"), NOW)
        .await
        .unwrap();
    assert_eq!(kinds(&*s).await, (false, true));
    s.verify_factor(&verification("ann", "t1", 10), NOW)
        .await
        .unwrap();
    assert_eq!(kinds(&*s).await, (true, true));
    assert_eq!(s.remove_totp_factors("ann", None).await.unwrap(), ["t1"]);
    assert_eq!(kinds(&*s).await, (false, true), "the passkey stays");
    first_totp(&*s, "ann", "t2", &["k.a"]).await;
    assert_eq!(kinds(&*s).await, (true, true));
    assert_eq!(
        s.remove_factor("ann", "p1", false, None).await.unwrap(),
        FactorRemoved::Removed { last: false }
    );
    assert_eq!(kinds(&*s).await, (true, false), "TOTP stays");
}

/// ann's (TOTP, passkey) flags as a user read gives them; the admin list must agree.
async fn kinds(s: &dyn Store) -> (bool, bool) {
    let ann = s.user_by_id("ann").await.unwrap().unwrap();
    let listed = s.list_users(10, &UserPageStart::Offset(0)).await.unwrap();
    let in_list = listed.iter().find(|u| u.id == "ann").unwrap();
    assert_eq!(
        (in_list.has_totp, in_list.has_webauthn),
        (ann.has_totp, ann.has_webauthn),
        "the admin list reads the same flags"
    );
    (ann.has_totp, ann.has_webauthn)
}
