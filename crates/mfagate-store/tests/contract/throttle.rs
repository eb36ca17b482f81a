//! ThrottleStore: a window grants at most its limit, and a claim on several windows counts in
//! all or none.

use std::sync::Arc;

use mfagate_core::store::*;

use crate::backend::*;

fn window(key: &str, limit: u32) -> WindowLimit {
    WindowLimit {
        key: key.into(),
        limit,
        window_seconds: 60,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_grants_at_most_its_limit_under_a_race() {
    let s = store().await;
    let store = s.store.clone();
    let claims = race(RACERS, move |_| {
        let store = Arc::clone(&store);
        async move { store.claim_windows(&[window("w", 5)], NOW).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| **c == Claim::Granted).count(), 5);
    assert!(claims.iter().all(|c| match c {
        Claim::Granted => true,
        Claim::Refused { retry_after } => *retry_after <= 60,
    }));
    // A window that has ended starts over.
    assert_eq!(
        s.claim_windows(&[window("w", 5)], NOW + 60).await.unwrap(),
        Claim::Granted
    );
}

#[tokio::test]
async fn a_claim_on_several_windows_counts_in_all_or_none_and_a_release_hands_one_back() {
    let s = store().await;
    assert_eq!(
        s.claim_windows(&[window("tight", 1)], NOW).await.unwrap(),
        Claim::Granted
    );
    // The tight window is full: nothing is counted in the loose one either.
    for _ in 0..3 {
        assert!(matches!(
            s.claim_windows(&[window("loose", 2), window("tight", 1)], NOW)
                .await
                .unwrap(),
            Claim::Refused { .. }
        ));
    }
    assert_eq!(
        s.claim_windows(&[window("loose", 2)], NOW).await.unwrap(),
        Claim::Granted
    );
    assert_eq!(
        s.claim_windows(&[window("loose", 2)], NOW).await.unwrap(),
        Claim::Granted
    );
    s.release_windows(&[window("tight", 1)], NOW).await.unwrap();
    assert_eq!(
        s.claim_windows(&[window("tight", 1)], NOW).await.unwrap(),
        Claim::Granted
    );
}
