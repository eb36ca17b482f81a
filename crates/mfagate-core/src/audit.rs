//! The audit trail: security events, stored and emitted through `tracing` with target
//! `mfagate::audit`. Details never contain a secret, code or token.
//!
//! Events reach the database through one background writer that stores whatever has queued up
//! in one transaction (group commit): under load, one fsync covers many events instead of one
//! each; when idle, an event is written at once. Under load it writes at most one batch every
//! `MIN_INTERVAL`, so that a login's events (its challenge, its answer, a few milliseconds
//! apart) mostly land in one batch: `audit_events_of_user` is ordered by user, so each batch
//! rewrites one page of that index per user in it, and with a batch per event it was the index
//! written most (15 % of the WAL's pages during logins with TOTP; README, "Performance"). The
//! price: a crash can lose the events queued in the last `MIN_INTERVAL`, never a committed
//! login or code use.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRecord, AuditStore};

enum Command {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

/// Queues audit records for the background writer.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Command>,
}

/// Most events per transaction.
const BATCH: usize = 512;

/// The least time from the start of one batch to the start of the next: when events come
/// slower than this, each is written at once.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

impl AuditWriter {
    /// Starts the writer on the current tokio runtime. It needs only the audit part of a store.
    pub fn spawn(store: Arc<dyn AuditStore>) -> Self {
        let (queue, mut commands) = mpsc::channel::<Command>(16 * 1024);
        tokio::spawn(async move {
            let mut next_batch = tokio::time::Instant::now();
            while let Some(first) = commands.recv().await {
                // Busy: the batch before began less than `MIN_INTERVAL` ago; gather what comes
                // meanwhile into this one.
                tokio::time::sleep_until(next_batch).await;
                let began = tokio::time::Instant::now();
                let mut records = Vec::new();
                let mut flushed = Vec::new();
                let mut next = Some(first);
                while let Some(command) = next {
                    match command {
                        Command::Record(record) => records.push(record),
                        Command::Flush(done) => flushed.push(done),
                    }
                    next = if records.len() < BATCH {
                        commands.try_recv().ok()
                    } else {
                        None
                    };
                }
                // A full batch means events come faster than batches go: no wait before the next.
                next_batch = if records.len() < BATCH {
                    began + MIN_INTERVAL
                } else {
                    began
                };
                if !records.is_empty() {
                    if let Err(error) = store.record_audit_batch(&records).await {
                        tracing::error!(%error, events = records.len(), "could not write audit events; check the database");
                    }
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        Self { queue }
    }

    pub async fn record(&self, record: AuditRecord) {
        if self.queue.send(Command::Record(record)).await.is_err() {
            tracing::error!("the audit writer has stopped; an event was not stored");
        }
    }

    /// Waits until everything queued so far is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

pub const LOGIN_OK: &str = "login_ok";
pub const LOGIN_FAILED: &str = "login_failed";
pub const LOGIN_THROTTLED: &str = "login_throttled";
pub const CHALLENGE_ISSUED: &str = "challenge_issued";
pub const SECOND_FACTOR_OK: &str = "second_factor_ok";
pub const SECOND_FACTOR_FAILED: &str = "second_factor_failed";
pub const SECOND_FACTOR_THROTTLED: &str = "second_factor_throttled";
pub const RECOVERY_CODE_USED: &str = "recovery_code_used";
pub const TOTP_ENABLED: &str = "totp_enabled";
pub const TOTP_DISABLED: &str = "totp_disabled";
pub const FACTOR_ADDED: &str = "factor_added";
pub const FACTOR_RENAMED: &str = "factor_renamed";
pub const FACTOR_REMOVED: &str = "factor_removed";
/// A passkey answered with a signature counter that did not grow: it may have been cloned.
pub const PASSKEY_POSSIBLE_CLONE: &str = "passkey_possible_clone";
/// A passwordless login (`passkey/finish`) was refused.
pub const PASSKEY_LOGIN_FAILED: &str = "passkey_login_failed";
pub const RECOVERY_CODES_REGENERATED: &str = "recovery_codes_regenerated";
pub const REFRESH_REUSE_DETECTED: &str = "refresh_reuse_detected";
pub const SETUP_TOKEN_ISSUED: &str = "setup_token_issued";
pub const USER_REGISTERED: &str = "user_registered";
pub const USER_CREATED: &str = "user_created";
pub const ADMIN_RESET_MFA: &str = "admin_reset_mfa";
pub const ADMIN_GRANTED: &str = "admin_granted";
pub const ADMIN_REVOKED: &str = "admin_revoked";
pub const PREFERRED_METHOD_CHANGED: &str = "preferred_method_changed";
pub const LOGOUT: &str = "logout";
pub const LOGOUT_ALL: &str = "logout_all";
/// A device was remembered at `mfa/verify`; a login then skipped the second factor with it.
pub const DEVICE_REMEMBERED: &str = "device_remembered";
pub const DEVICE_LOGIN: &str = "device_login";
/// A security e-mail could not be sent (the action it reported stands).
pub const SECURITY_EMAIL_FAILED: &str = "security_email_failed";
pub const SESSION_ENDED: &str = "session_ended";
/// A password proved again in a session (`POST /auth/reauthenticate` without a factor).
pub const REAUTHENTICATED: &str = "reauthenticated";
pub const EMAIL_CODE_SENT: &str = "email_code_sent";
pub const EMAIL_SEND_FAILED: &str = "email_send_failed";
pub const EMAIL_VERIFIED: &str = "email_verified";
pub const VERIFICATION_SENT: &str = "verification_sent";
pub const USER_INVITED: &str = "user_invited";
pub const INVITATION_ACCEPTED: &str = "invitation_accepted";
pub const PASSWORD_CHANGED: &str = "password_changed";
pub const PASSWORD_RESET_REQUESTED: &str = "password_reset_requested";
pub const PASSWORD_RESET: &str = "password_reset";
pub const PASSWORD_RESET_THROTTLED: &str = "password_reset_throttled";
pub const ADMIN_DISABLED_USER: &str = "admin_disabled_user";
pub const ADMIN_ENABLED_USER: &str = "admin_enabled_user";
pub const EMAIL_OTP_ENABLED: &str = "email_otp_enabled";
pub const EMAIL_OTP_DISABLED: &str = "email_otp_disabled";

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Notify;
    use tokio::time::Instant;

    use super::*;
    use crate::store::{StoreResult, StoredAuditEvent};

    /// An audit store that remembers when each batch came and how many events it held.
    #[derive(Default)]
    struct Batches {
        seen: Mutex<Vec<(Instant, usize)>>,
        stored: Notify,
    }

    #[async_trait]
    impl AuditStore for Batches {
        async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()> {
            self.seen
                .lock()
                .unwrap()
                .push((Instant::now(), records.len()));
            self.stored.notify_one();
            Ok(())
        }

        async fn recent_audit_events(
            &self,
            _user_id: Option<&str>,
            _limit: u32,
        ) -> StoreResult<Vec<StoredAuditEvent>> {
            Ok(Vec::new())
        }
    }

    fn event() -> AuditRecord {
        AuditRecord {
            at: 0,
            user_id: Some("u".into()),
            event: LOGIN_OK,
            ip: None,
            detail: None,
        }
    }

    fn sizes(store: &Batches) -> Vec<usize> {
        store.seen.lock().unwrap().iter().map(|(_, n)| *n).collect()
    }

    // The clock is paused: it moves only when every task waits on a timer, straight to the
    // earliest one. So "stored before a 1 ms timeout fired" means stored without any wait.
    #[tokio::test(start_paused = true)]
    async fn an_event_when_idle_is_stored_at_once() {
        let store = Arc::new(Batches::default());
        let writer = AuditWriter::spawn(store.clone());
        writer.record(event()).await;
        tokio::time::timeout(Duration::from_millis(1), store.stored.notified())
            .await
            .expect("an event on an idle writer is stored without waiting");
        assert_eq!(sizes(&store), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn events_under_load_share_one_batch_per_interval() {
        let store = Arc::new(Batches::default());
        let writer = AuditWriter::spawn(store.clone());
        let start = Instant::now();
        writer.record(event()).await;
        store.stored.notified().await;

        // Two events right after the first batch: both wait for the interval, in one batch.
        writer.record(event()).await;
        writer.record(event()).await;
        writer.flush().await;
        assert_eq!(sizes(&store), vec![1, 2]);
        let second = store.seen.lock().unwrap()[1].0;
        assert!(
            second - start >= MIN_INTERVAL,
            "the second batch came {:?} after the first",
            second - start
        );

        // More than a batch holds: a full batch, then the rest at once, not an interval later.
        for _ in 0..BATCH + 10 {
            writer.record(event()).await;
        }
        writer.flush().await;
        let seen = store.seen.lock().unwrap().clone();
        assert_eq!(
            seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            vec![1, 2, BATCH, 10]
        );
        assert!(seen[2].0 - second >= MIN_INTERVAL);
        assert_eq!(
            seen[3].0, seen[2].0,
            "the rest follows a full batch at once"
        );
    }
}
