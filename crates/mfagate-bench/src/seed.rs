//! A database as ordinary use grows it, seeded through the store's own import intent (so it
//! follows the schema as it changes): users with TOTP (a third also with e-mailed codes), full
//! recovery-code sets with some used, several sessions of which one expired, an audit history,
//! pending and expired e-mail keys, expired challenges waiting for the clean-up.

use std::sync::Arc;
use std::time::Instant;

use mfagate_core::recovery_codes;
use mfagate_core::sealing::Sealer;
use mfagate_core::secret::{generate_token, hash_token, new_id, new_ordered_id};
use mfagate_core::service::{recovery_context, totp_context};
use mfagate_core::store::{
    AuditRecord, ImportedAccount, KeyPurpose, NewChallenge, NewRefreshToken, NewUser, TotpDevice,
};
use mfagate_core::totp;
use mfagate_core::{Keys, Store};

/// The seed's version: raise it with any change to what is seeded, so `--seed-cache` seeds anew
/// (2: creation times in storage order, the tenth session).
pub const VERSION: u32 = 2;
/// Accounts per import transaction.
const BATCH: usize = 1_000;
/// Users whose recovery codes are kept in plain text for the regeneration scenario.
pub const WITH_CODES: usize = 512;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct SeededUser {
    pub id: String,
    pub username: String,
    pub secret: Vec<u8>,
    /// Plain recovery codes (only for the last `WITH_CODES` users), none of them used.
    pub codes: Vec<String>,
}

fn account(
    index: usize,
    total: usize,
    sealer: &Sealer,
    password_hash: &str,
    now: i64,
) -> (ImportedAccount, SeededUser) {
    let id = new_id();
    let username = format!("seed{index}");
    let secret = totp::generate_secret();
    // Registered over the last 30 days in the order they are stored, as a deployment's users
    // are: the admin list's pages (by creation) then read neighbouring rows. (Until the tenth
    // session the times wrapped every 86,400 users, so at a million each page of 100 users read
    // about 100 scattered heap pages, against 2 at 30,000.)
    let created_at = now - 86_400 * 30 + (index as i64 * 86_400 * 30 / total.max(1) as i64);
    let codes = recovery_codes::generate_set(10);
    let keep_codes = index + WITH_CODES >= total;
    // The first two codes of the users whose codes are not kept have been used.
    let recovery = codes
        .iter()
        .enumerate()
        .map(|(n, code)| {
            let used = (!keep_codes && n < 2).then_some(now - 3_600);
            (sealer.seal(code.as_bytes(), &recovery_context(&id)), used)
        })
        .collect();
    let session = |n: i64, expires_at: i64| NewRefreshToken {
        id: new_ordered_id(now - 3_600 * n),
        token_hash: hash_token(&generate_token()),
        user_id: id.clone(),
        family_id: new_id(),
        amr: "pwd mfa otp".into(),
        auth_time: now - 3_600 * n,
        created_at: now - 3_600 * n,
        expires_at,
        ip: None,
        user_agent: None,
    };
    let event = |at: i64, event: &'static str| AuditRecord {
        at,
        user_id: Some(id.clone()),
        event,
        ip: Some(format!(
            "10.{}.{}.{}",
            index % 250,
            (index / 250) % 250,
            index % 7
        )),
        detail: None,
    };
    let mut email_keys = Vec::new();
    match index % 20 {
        0 => email_keys.push((
            hash_token(&generate_token()),
            KeyPurpose::Verification,
            now + 86_400,
        )),
        1 => email_keys.push((
            hash_token(&generate_token()),
            KeyPurpose::PasswordReset,
            now - 60,
        )),
        _ => {}
    }
    let challenges = if index.is_multiple_of(10) {
        vec![NewChallenge {
            id: new_id(),
            user_id: id.clone(),
            token_hash: hash_token(&generate_token()),
            created_at: now - 4_000,
            expires_at: now - 3_700,
            webauthn_state: None,
            session_id: None,
        }]
    } else {
        Vec::new()
    };
    let imported = ImportedAccount {
        user: NewUser {
            id: id.clone(),
            username: username.clone(),
            email: format!("{username}@example.com"),
            password_hash: password_hash.to_string(),
            is_admin: false,
            created_at,
        },
        email_verified: index % 3 != 2,
        email_otp: index.is_multiple_of(3),
        preferred_method: Some(mfagate_core::Method::Totp),
        totp: Some(TotpDevice {
            secret_sealed: sealer.seal(&secret, &totp_context(&id)),
            created_at,
            last_used_at: Some(now - 7_200),
            last_step: Some((now - 7_200) / 30),
        }),
        recovery_codes: recovery,
        sessions: vec![
            session(1, now + 86_400 * 13),
            session(30, now + 86_400 * 2),
            session(400, now - 86_400),
        ],
        email_keys,
        challenges,
        audit: vec![
            event(created_at, "user_registered"),
            event(created_at + 60, "totp_enabled"),
            event(now - 7_200, "login_succeeded"),
            event(now - 7_200, "mfa_verified"),
            event(now - 3_600, "login_failed"),
        ],
    };
    let seeded = SeededUser {
        id,
        username,
        secret,
        codes: if keep_codes { codes } else { Vec::new() },
    };
    (imported, seeded)
}

/// Seeds `count` accounts; batches are built on the blocking pool while the previous one is
/// being stored.
pub async fn seed(
    store: Arc<dyn Store>,
    keys: &Keys,
    count: usize,
    password_hash: &str,
    now: i64,
) -> Result<Vec<SeededUser>, String> {
    let began = Instant::now();
    let sealer = Arc::new(Sealer::new(&keys.sealing, &[]));
    let mut users = Vec::with_capacity(count);
    let build = |start: usize| {
        let (sealer, hash) = (sealer.clone(), password_hash.to_string());
        tokio::task::spawn_blocking(move || {
            (start..(start + BATCH).min(count))
                .map(|i| account(i, count, &sealer, &hash, now))
                .unzip::<_, _, Vec<_>, Vec<_>>()
        })
    };
    let mut next = (count > 0).then(|| build(0));
    let mut start = 0;
    while let Some(building) = next.take() {
        let (accounts, seeded) = building.await.map_err(|e| e.to_string())?;
        start += accounts.len();
        if start < count {
            next = Some(build(start));
        }
        store
            .import_accounts(&accounts)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        users.extend(seeded);
        if start % 100_000 < BATCH && start >= 100_000 {
            eprintln!(
                "    {start} of {count} accounts seeded ({:.0} s)",
                began.elapsed().as_secs_f64()
            );
        }
    }
    Ok(users)
}
