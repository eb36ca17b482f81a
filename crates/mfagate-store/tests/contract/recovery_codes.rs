//! RecoveryCodeStore: each code works once, whoever races for it.

use std::sync::Arc;

use crate::backend::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_code_is_used_once_under_a_race() {
    let s = store().await;
    user(&*s, "ann").await;
    first_totp(&*s, "ann", "phone", &["k.a", "k.b", "k.c"]).await;
    let codes = s.unused_recovery_codes("ann").await.unwrap();
    assert_eq!(codes.len(), 3);
    let id = codes[1].id;
    let store = s.store.clone();
    let used = race(RACERS, move |_| {
        let store = Arc::clone(&store);
        async move { store.consume_recovery_code("ann", id, NOW).await.unwrap() }
    })
    .await;
    assert_eq!(used.iter().filter(|u| **u).count(), 1);
    assert_eq!(s.count_unused_recovery_codes("ann").await.unwrap(), 2);
    // Another user cannot use ann's code.
    user(&*s, "bob").await;
    assert!(!s
        .consume_recovery_code("bob", codes[0].id, NOW)
        .await
        .unwrap());
    // A use marks the oldest TOTP factor as used (what mfa/status shows).
    let factors = s.factors("ann").await.unwrap();
    assert_eq!(factors[0].last_used_at, Some(NOW));
}

#[tokio::test]
async fn a_new_set_replaces_every_code_only_while_a_factor_is_held() {
    let s = store().await;
    user(&*s, "ann").await;
    assert!(!s
        .replace_recovery_codes("ann", &["k.x".into()])
        .await
        .unwrap());
    first_totp(&*s, "ann", "phone", &["k.a", "k.b"]).await;
    let old = s.unused_recovery_codes("ann").await.unwrap();
    s.consume_recovery_code("ann", old[0].id, NOW)
        .await
        .unwrap();
    assert!(s
        .replace_recovery_codes("ann", &["k.c".into(), "k.d".into(), "k.e".into()])
        .await
        .unwrap());
    let new: Vec<String> = s
        .unused_recovery_codes("ann")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.code_sealed)
        .collect();
    assert_eq!(new, ["k.c", "k.d", "k.e"], "in order, and only these");
    assert!(!s
        .consume_recovery_code("ann", old[1].id, NOW)
        .await
        .unwrap());
}
