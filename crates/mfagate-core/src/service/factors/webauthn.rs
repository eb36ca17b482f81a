//! Enrolling a passkey: creation options out (with the user's passkeys excluded), the
//! registration's ceremony sealed on the pending factor, and, at `verify`, taken from it (it
//! answers once) and checked.

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use super::super::passkeys::record_context;
use super::{not_found, Gatekeeper};
use crate::error::{Error, Result};
use crate::factors::FactorKind;
use crate::store::{Factor, NewPasskey, User};

fn enrolment_context(user_id: &str) -> String {
    format!("webauthn-enrol:{user_id}")
}

impl Gatekeeper {
    /// Creation options for a new passkey of `user` (who holds `existing`), and the sealed
    /// ceremony to keep on the pending factor.
    pub(super) fn begin_passkey(
        &self,
        user: &User,
        existing: &[Factor],
    ) -> Result<(Value, String)> {
        let rp = self.relying_party()?;
        let exclude = existing
            .iter()
            .filter(|f| f.kind == FactorKind::Webauthn)
            .filter_map(|f| f.credential_id.as_deref())
            .filter_map(|id| BASE64URL_NOPAD.decode(id.as_bytes()).ok())
            .collect();
        // The user handle is the user's id: opaque, stable, no personal data in it.
        let (options, state) = rp
            .start_registration(user.id.as_bytes(), &user.username, exclude)
            .map_err(Error::Internal)?;
        let sealed = self
            .sealer
            .seal(state.as_bytes(), &enrolment_context(&user.id));
        Ok((options, sealed))
    }

    /// Checks the registration of the pending passkey `factor_id`; its ceremony is taken first,
    /// so a failed or replayed answer leaves nothing to try again with (begin again).
    pub(super) async fn finish_passkey(
        &self,
        user_id: &str,
        factor_id: &str,
        credential: &Value,
        now: i64,
    ) -> Result<NewPasskey> {
        let rp = self.relying_party()?;
        let sealed = self
            .store
            .take_enrolment_state(user_id, factor_id, now)
            .await?
            .ok_or_else(not_found)?;
        let state = self.sealer.open(&sealed, &enrolment_context(user_id))?;
        let registered = rp
            .finish_registration(credential, &String::from_utf8_lossy(&state))
            .map_err(|refusal| {
                tracing::info!(
                    refusal = refusal.as_str(),
                    "a passkey registration was refused"
                );
                Error::InvalidCredential {
                    attempts_remaining: None,
                }
            })?;
        Ok(NewPasskey {
            credential_id: BASE64URL_NOPAD.encode(&registered.credential_id),
            record_sealed: self
                .sealer
                .seal(registered.record.as_bytes(), &record_context(user_id)),
            transports: serde_json::to_string(&registered.transports)
                .map_err(|e| Error::Internal(format!("passkey transports: {e}")))?,
            sign_count: i64::from(registered.sign_count),
        })
    }
}
