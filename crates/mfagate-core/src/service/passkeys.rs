//! Passkeys at login: as the second factor of a challenge (`mfa/verify` with a credential), and
//! without a password (`passkey/begin`, `passkey/finish`). Enrolment is in
//! `factors::webauthn`; the checks of what the authenticator signed are in `crate::webauthn`.
//!
//! Every ceremony's state is in the database, sealed and bound to what it was begun for: a
//! challenge's to the challenge (it dies when the challenge is spent), a passwordless one to
//! its passkey token (taken, and so spent, before the answer is checked). The counter an answer
//! carries is claimed by one conditional update, so a replay or a clone that races the real key
//! loses.

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use super::*;
use crate::webauthn::{self, Assertion, Refusal, StoredPasskey, Verification};

/// How a user answers: a code (TOTP, recovery, e-mailed), or a passkey's
/// `credential.toJSON()`.
#[derive(Clone)]
pub enum Proof {
    Code(String),
    Credential(Value),
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Proof::Code(..)",
            Self::Credential(_) => "Proof::Credential(..)",
        })
    }
}

/// A passwordless login begun: the request options for `navigator.credentials.get`, and the
/// token that finishes it.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyBegun {
    pub options: Value,
    pub passkey_token: String,
    pub expires_in: i64,
}

crate::debug_showing!(PasskeyBegun { expires_in });

/// The associated data a passkey's record is sealed with.
pub(super) fn record_context(user_id: &str) -> String {
    format!("webauthn:{user_id}")
}

fn challenge_context(user_id: &str) -> String {
    format!("webauthn-login:{user_id}")
}

fn passkey_token_context(token_hash: &str) -> String {
    format!("passkey-token:{token_hash}")
}

/// The amr of a passwordless login: a user-verified passkey is something held and something
/// known or are, in one gesture.
pub const PASSKEY_LOGIN_AMR: [&str; 2] = ["hwk", "mfa"];

impl Gatekeeper {
    /// The relying party, or why passkeys cannot be used here.
    pub(super) fn relying_party(&self) -> Result<&webauthn::RelyingParty> {
        if self.config.mode == MfaMode::Disabled {
            return Err(Error::MfaDisabled);
        }
        self.relying_party
            .as_ref()
            .filter(|_| self.config.allows(Method::Webauthn))
            .ok_or_else(|| {
                Error::InvalidMethod(
                    "passkeys are not offered by this server: add webauthn to MFAGATE_MFA_METHODS"
                        .into(),
                )
            })
    }

    /// A verified passkey factor as the relying party needs it.
    pub(super) fn stored_passkey(&self, factor: &Factor) -> Result<StoredPasskey> {
        let (Some(sealed), Some(id)) = (&factor.secret_sealed, &factor.credential_id) else {
            return Err(Error::Internal(format!(
                "passkey factor {} has no credential",
                factor.id
            )));
        };
        let record = self.sealer.open(sealed, &record_context(&factor.user_id))?;
        Ok(StoredPasskey {
            credential_id: BASE64URL_NOPAD
                .decode(id.as_bytes())
                .map_err(|_| Error::Internal(format!("passkey factor {}: bad id", factor.id)))?,
            record: String::from_utf8(record).map_err(|_| {
                Error::Internal(format!("passkey factor {}: bad record", factor.id))
            })?,
            sign_count: u32::try_from(factor.sign_count).unwrap_or(u32::MAX),
        })
    }

    async fn stored_passkeys(&self, user_id: &str) -> Result<Vec<StoredPasskey>> {
        self.store
            .factors(user_id)
            .await?
            .iter()
            .filter(|f| f.kind == FactorKind::Webauthn)
            .map(|f| self.stored_passkey(f))
            .collect()
    }

    /// For a challenge of a user with passkeys: the request options it carries, and its
    /// ceremony sealed for the store.
    pub(super) async fn challenge_passkey_options(
        &self,
        user: &User,
    ) -> Result<Option<(Value, String)>> {
        let Ok(rp) = self.relying_party() else {
            return Ok(None);
        };
        let passkeys = self.stored_passkeys(&user.id).await?;
        if passkeys.is_empty() {
            return Ok(None);
        }
        let (options, state) = rp
            .start_login(&passkeys, Verification::Preferred, Some(&user.id), true)
            .map_err(Error::Internal)?;
        let sealed = self
            .sealer
            .seal(state.as_bytes(), &challenge_context(&user.id));
        Ok(Some((options, sealed)))
    }

    /// Which passkey of the challenge's user signed `credential` for this challenge, with the
    /// counter to claim; claims nothing.
    pub(super) async fn identify_passkey(
        &self,
        challenge: &Challenge,
        credential: &Value,
    ) -> Result<std::result::Result<FactorClaim, Refusal>> {
        let rp = self.relying_party()?;
        let Some(sealed) = &challenge.webauthn_state else {
            return Ok(Err(Refusal::Invalid));
        };
        let assertion = match Assertion::parse(credential) {
            Ok(assertion) => assertion,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let factor = self
            .store
            .passkey_by_credential(&BASE64URL_NOPAD.encode(assertion.credential_id()))
            .await?;
        // A passkey of another user is refused like a wrong code.
        let Some(factor) = factor.filter(|f| f.user_id == challenge.user_id) else {
            return Ok(Err(Refusal::Invalid));
        };
        let state = self
            .sealer
            .open(sealed, &challenge_context(&challenge.user_id))?;
        let ceremony = rp
            .login_ceremony(&String::from_utf8_lossy(&state))
            .map_err(Error::Internal)?;
        let passkey = self.stored_passkey(&factor)?;
        Ok(rp
            .finish_login(&assertion, &ceremony, &passkey, &challenge.user_id)
            .map(|count| FactorClaim::SignCount {
                factor_id: factor.id.clone(),
                count,
            }))
    }

    /// Begins a passwordless login. With a name, only that user's passkeys may answer; a name
    /// that matches nobody (or a user without passkeys) gets options of the same shape, with a
    /// stand-in credential derived from the name, so the answer tells nothing.
    pub async fn passkey_begin(
        &self,
        username: Option<&str>,
        ctx: &Context,
    ) -> Result<PasskeyBegun> {
        let rp = self.relying_party()?;
        let (name, user) = match username {
            Some(typed) => {
                let (name, user) = self.lookup_login(typed).await?;
                (Some(name), user.filter(|u| !u.disabled))
            }
            None => (None, None),
        };
        let passkeys = match &user {
            Some(user) => self.stored_passkeys(&user.id).await?,
            None => Vec::new(),
        };
        let owner = user.as_ref().filter(|_| !passkeys.is_empty());
        let (mut options, state) = rp
            .start_login(
                &passkeys,
                Verification::Required,
                owner.map(|u| u.id.as_str()),
                name.is_some(),
            )
            .map_err(Error::Internal)?;
        if let (Some(name), None) = (&name, owner) {
            let decoy = self.email_code_key.derive(&format!("passkey decoy {name}"));
            if let Some(fields) = options.as_object_mut() {
                fields.insert(
                    "allowCredentials".into(),
                    serde_json::json!([{
                        "type": "public-key",
                        "id": BASE64URL_NOPAD.encode(decoy.expose()),
                        "transports": ["internal", "hybrid"],
                    }]),
                );
            }
        }
        let token = generate_token();
        let token_hash = hash_token(&token);
        let sealed = self
            .sealer
            .seal(state.as_bytes(), &passkey_token_context(&token_hash));
        self.store
            .create_passkey_token(
                &token_hash,
                &sealed,
                ctx.now + self.config.challenge_ttl,
                ctx.now,
            )
            .await?;
        Ok(PasskeyBegun {
            options,
            passkey_token: token,
            expires_in: self.config.challenge_ttl,
        })
    }

    /// Finishes a passwordless login: the token is taken (it works once, whatever follows),
    /// then the credential is found by its id, checked against the ceremony (user verification
    /// required), the account rules of a login are applied, and the counter is claimed.
    pub async fn passkey_finish(
        &self,
        passkey_token: &str,
        credential: &Value,
        ctx: &Context,
    ) -> Result<TokenPair> {
        let outcome = self
            .passkey_finish_counted(passkey_token, credential, ctx)
            .await;
        crate::metrics::login(match &outcome {
            Ok(_) => "passkey",
            Err(Error::PasskeyRefused) => "passkey_refused",
            Err(Error::InvalidToken) => "passkey_token_invalid",
            Err(Error::EmailNotVerified) => "email_not_verified",
            Err(_) => "error",
        });
        outcome
    }

    async fn passkey_finish_counted(
        &self,
        passkey_token: &str,
        credential: &Value,
        ctx: &Context,
    ) -> Result<TokenPair> {
        let rp = self.relying_party()?;
        let token_hash = hash_token(passkey_token);
        let sealed = self
            .store
            .take_passkey_token(&token_hash, ctx.now)
            .await?
            .ok_or(Error::InvalidToken)?;
        let state = self
            .sealer
            .open(&sealed, &passkey_token_context(&token_hash))?;
        let ceremony = rp
            .login_ceremony(&String::from_utf8_lossy(&state))
            .map_err(Error::Internal)?;
        let Ok(assertion) = Assertion::parse(credential) else {
            return Err(self.passkey_refused(None, Refusal::Malformed, ctx).await);
        };
        let factor = self
            .store
            .passkey_by_credential(&BASE64URL_NOPAD.encode(assertion.credential_id()))
            .await?;
        // Begun for a name: only that user's passkeys count.
        let factor = factor.filter(|f| match ceremony.intended_user() {
            None => true,
            Some(intended) => intended == Some(f.user_id.as_str()),
        });
        let Some(factor) = factor else {
            return Err(self.passkey_refused(None, Refusal::Invalid, ctx).await);
        };
        let user = self
            .store
            .user_by_id(&factor.user_id)
            .await?
            .filter(|u| !u.disabled);
        let Some(user) = user else {
            return Err(self.passkey_refused(None, Refusal::Invalid, ctx).await);
        };
        let passkey = self.stored_passkey(&factor)?;
        let count = match rp.finish_login(&assertion, &ceremony, &passkey, &user.id) {
            Ok(count) => count,
            Err(refusal) => return Err(self.passkey_refused(Some(&user.id), refusal, ctx).await),
        };
        if self.config.email_verification && !user.email_verified {
            return Err(Error::EmailNotVerified);
        }
        if !self
            .store
            .accept_sign_count(&user.id, &factor.id, count, ctx.now)
            .await?
        {
            let refusal = Refusal::PossibleClone;
            return Err(self.passkey_refused(Some(&user.id), refusal, ctx).await);
        }
        self.audit(
            audit::LOGIN_OK,
            Some(&user.id),
            ctx,
            Some(format!("passkey factor {}", factor.id)),
        )
        .await;
        self.issue_tokens(&user.id, &PASSKEY_LOGIN_AMR, ctx).await
    }

    /// Audits a refused passkey (a counter that did not grow as a possible clone) and gives
    /// the one answer every refusal gets.
    async fn passkey_refused(
        &self,
        user_id: Option<&str>,
        refusal: Refusal,
        ctx: &Context,
    ) -> Error {
        if refusal == Refusal::PossibleClone {
            self.audit(audit::PASSKEY_POSSIBLE_CLONE, user_id, ctx, None)
                .await;
        }
        self.audit(
            audit::PASSKEY_LOGIN_FAILED,
            user_id,
            ctx,
            Some(refusal.as_str().into()),
        )
        .await;
        Error::PasskeyRefused
    }
}
