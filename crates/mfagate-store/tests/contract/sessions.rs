//! SessionStore: sessions listed from their live tokens (imported ones too), continued by
//! reauthentications as one chain, ended one at a time or all at once with the remembered
//! devices.

use std::sync::Arc;

use mfagate_core::store::*;

use crate::backend::*;

fn token(hash: &str, user: &str, family: &str, at: i64) -> NewRefreshToken {
    NewRefreshToken {
        family_id: family.into(),
        created_at: at,
        auth_time: at,
        ip: Some("192.0.2.7".into()),
        user_agent: Some("Firefox".into()),
        ..refresh(hash, user)
    }
}

/// An account to import, with these tokens (and nothing else).
fn imported(id: &str, sessions: Vec<NewRefreshToken>) -> ImportedAccount {
    ImportedAccount {
        user: NewUser {
            id: id.into(),
            username: id.into(),
            email: format!("{id}@example.com"),
            password_hash: "$argon2id$fake".into(),
            is_admin: false,
            created_at: NOW,
        },
        email_verified: true,
        email_otp: false,
        preferred_method: None,
        totp: None,
        recovery_codes: vec![],
        sessions,
        email_keys: vec![],
        challenges: vec![],
        audit: vec![],
    }
}

#[tokio::test]
async fn imported_and_new_sessions_are_listed_and_end_one_by_one_or_all_at_once() {
    let s = store().await;
    s.import_accounts(&[imported(
        "ann",
        vec![token("old", "ann", "imported", NOW - 10)],
    )])
    .await
    .unwrap();
    s.insert_refresh_token(&token("new", "ann", "fresh", NOW))
        .await
        .unwrap();
    let listed = s.live_sessions("ann", NOW).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["fresh", "imported"], "newest first");
    assert_eq!(listed[0].user_agent.as_deref(), Some("Firefox"));
    assert_eq!(listed[1].ip, None, "an import knows no address");
    // A rotation records the session's use.
    let rotated = s
        .rotate_refresh_token(
            &presented("new"),
            &RefreshSuccessor {
                id: "new2".into(),
                token_hash: "new2".into(),
                created_at: NOW + 5,
                expires_at: NOW + 9000,
            },
            NOW + 5,
        )
        .await
        .unwrap();
    assert!(matches!(rotated, RefreshOutcome::Rotated { .. }));
    let fresh = &s.live_sessions("ann", NOW + 5).await.unwrap()[0];
    assert_eq!(
        (fresh.last_used_at, fresh.expires_at),
        (NOW + 5, NOW + 9000)
    );

    assert!(s.end_session("ann", "imported", NOW).await.unwrap());
    assert!(
        !s.end_session("ann", "imported", NOW).await.unwrap(),
        "over already"
    );
    assert!(
        !s.end_session("bob", "fresh", NOW).await.unwrap(),
        "not bob's"
    );
    s.remember_device("device", "ann", NOW + 600, NOW)
        .await
        .unwrap();
    assert!(s.use_remembered_device("device", "ann", NOW).await.unwrap());
    assert!(!s.use_remembered_device("device", "bob", NOW).await.unwrap());
    assert_eq!(s.end_all_sessions("ann", NOW).await.unwrap(), 1);
    assert!(s.live_sessions("ann", NOW).await.unwrap().is_empty());
    assert!(
        !s.use_remembered_device("device", "ann", NOW).await.unwrap(),
        "forgotten with the sessions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reauthentications_leave_one_session_with_one_live_token() {
    let held = store().await;
    let s: Arc<dyn Store> = held.store.clone();
    user(&*s, "ann").await;
    s.insert_refresh_token(&token("t0", "ann", "family", NOW))
        .await
        .unwrap();
    let continued = race(16, |i| {
        let s = s.clone();
        async move {
            s.continue_session(
                &token(&format!("t{}", i + 1), "ann", "family", NOW + 1),
                NOW + 1,
            )
            .await
            .unwrap()
        }
    })
    .await;
    // Each continuation uses up the session's live token and stores the next: SQLite runs them
    // one after another (all continue); on PostgreSQL one that waited on the token another
    // used up finds none and is refused (the caller logs in again). Either way at least one
    // continues and the session stays one chain with one live token.
    assert!(continued.iter().any(|c| *c));
    let sessions = s.live_sessions("ann", NOW + 1).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        s.end_all_sessions("ann", NOW + 1).await.unwrap(),
        1,
        "one live token"
    );
    // A session that was ended cannot be continued.
    assert!(!s
        .continue_session(&token("late", "ann", "family", NOW + 3), NOW + 3)
        .await
        .unwrap());
}

/// An import names its sessions (its tokens' families), and they must be new: a family id that
/// is another user's session, or that two imported users share, is a conflict, and nothing of
/// the import is stored. Otherwise the imported token would join a session that ending the
/// importing user's sessions does not reach.
#[tokio::test]
async fn an_import_cannot_join_a_token_to_another_users_session() {
    let s = store().await;
    user(&*s, "ann").await;
    s.insert_refresh_token(&token("anns", "ann", "family-ann", NOW))
        .await
        .unwrap();
    let account =
        |id: &str, family: &str| imported(id, vec![token(&format!("{id}-token"), id, family, NOW)]);
    for accounts in [
        vec![account("bob", "family-ann")],
        vec![
            account("bob", "family-shared"),
            account("cat", "family-shared"),
        ],
    ] {
        let imported = s.import_accounts(&accounts).await;
        assert!(
            matches!(imported, Err(mfagate_core::StoreError::Conflict(_))),
            "{imported:?}"
        );
        assert!(
            s.user_by_id("bob").await.unwrap().is_none(),
            "all or nothing"
        );
    }
    // Ann's session is still hers alone: ending it ends only her token.
    assert_eq!(
        s.live_sessions("ann", NOW).await.unwrap().len(),
        1,
        "ann's session"
    );
    s.import_accounts(&[account("bob", "family-bob")])
        .await
        .unwrap();
    assert_eq!(s.live_sessions("bob", NOW).await.unwrap().len(), 1);
}
