//! Recovery codes: made with the first factor, shown, regenerated.

use super::*;
use crate::recovery_codes;

impl Gatekeeper {
    /// A fresh set of recovery codes: in plain text for the user, sealed for the store.
    pub(super) fn new_recovery_codes(&self, user_id: &str) -> (Vec<String>, Vec<String>) {
        let codes = recovery_codes::generate_set(self.config.recovery_code_count);
        let sealed = codes
            .iter()
            .map(|c| self.sealer.seal(c.as_bytes(), &recovery_context(user_id)))
            .collect();
        (codes, sealed)
    }

    /// The unused codes, to a recent authentication with a second factor (API.md v3, "Recent
    /// authentication"): codes read with a stolen access token would be a permanent second
    /// factor, so a token from a password alone, or one older than `reauth_max_age`, gets
    /// `reauthentication_required`.
    pub async fn recovery_codes(&self, claims: &AccessClaims, now: i64) -> Result<Vec<String>> {
        let user_id = claims.sub.as_str();
        self.user(user_id).await?;
        if self.store.factors(user_id).await?.is_empty() {
            return Err(Error::TotpNotEnabled);
        }
        self.require_recent(Some(claims), true, now)?;
        self.store
            .unused_recovery_codes(user_id)
            .await?
            .iter()
            .map(|stored| {
                let plain = self
                    .sealer
                    .open(&stored.code_sealed, &recovery_context(user_id))?;
                Ok(String::from_utf8_lossy(&plain).into_owned())
            })
            .collect()
    }

    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        code: &str,
        ctx: &Context,
    ) -> Result<Vec<String>> {
        let user = self.user(user_id).await?;
        if self.store.factors(user_id).await?.is_empty() {
            return Err(Error::TotpNotEnabled);
        }
        self.require_second_factor(user_id, code, ctx).await?;
        let (codes, sealed) = self.new_recovery_codes(user_id);
        if !self.store.replace_recovery_codes(user_id, &sealed).await? {
            // Disabled, or the last factor went while the codes were made.
            return Err(Error::TotpNotEnabled);
        }
        self.audit(audit::RECOVERY_CODES_REGENERATED, Some(user_id), ctx, None)
            .await;
        self.notify(notices::Notice::RecoveryCodesRegenerated, &user, ctx)
            .await;
        Ok(codes)
    }
}
