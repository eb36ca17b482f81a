//! Passkeys (WebAuthn): the relying party. Every check of what an authenticator sends (client
//! data, origin, RP ID hash, flags, CBOR attestation, signature, counter) is done by
//! `webauthn-rs-core`, the engine of `webauthn-rs` and kanidm; this file chooses its options
//! and speaks JSON to the rest of mfagate, so no other file names a `webauthn-rs` type.
//!
//! We use the core crate rather than the `webauthn-rs` wrapper because the contract asks for
//! choices the wrapper hard-codes: user verification *preferred* at enrolment and as a second
//! factor (a security key without a PIN is still a second factor after a password), *required*
//! for a passwordless login, and `residentKey: preferred` so that passkeys are discoverable.
//! The invariants the wrapper upholds are kept here: ceremony state is held server side (in
//! the database, sealed, single use), credential ids are unique across users (the store), the
//! user handle of a discoverable login must be the credential owner's, and the counter only
//! grows (checked here and claimed atomically in the store).
//!
//! Options go out as the W3C Level 3 JSON forms (`PublicKeyCredentialCreationOptionsJSON`,
//! `PublicKeyCredentialRequestOptionsJSON`, base64url), responses come in as
//! `credential.toJSON()` gives them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, Credential, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, RequestRegistrationExtensions,
    ResidentKeyRequirement, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

/// How long a browser lets the user answer (also the `timeout` of the options).
const CEREMONY_TIMEOUT: Duration = Duration::from_secs(300);

/// Where passkeys are bound: `MFAGATE_WEBAUTHN_RP_ID`, `_RP_NAME`, `_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnSettings {
    /// The domain passkeys belong to (the site's registrable domain or a parent of the page's).
    pub rp_id: String,
    /// Shown by the browser and the authenticator.
    pub rp_name: String,
    /// The page origins allowed to use them (scheme, host and port).
    pub origins: Vec<String>,
}

impl Default for WebauthnSettings {
    fn default() -> Self {
        Self {
            rp_id: "localhost".into(),
            rp_name: "mfagate".into(),
            origins: vec!["http://localhost:8080".into()],
        }
    }
}

impl WebauthnSettings {
    /// The origins, checked against the RP ID; the error says what to set.
    pub fn parsed_origins(&self) -> Result<Vec<Url>, String> {
        let rp_id = self.rp_id.trim().to_ascii_lowercase();
        if rp_id.is_empty() || rp_id.contains(['/', ':']) {
            return Err(format!(
                "MFAGATE_WEBAUTHN_RP_ID '{}' must be a bare domain such as example.com (no \
                 scheme, port or path): the site passkeys belong to",
                self.rp_id
            ));
        }
        if self.origins.is_empty() {
            return Err(
                "MFAGATE_WEBAUTHN_ORIGINS is empty: set the origin of the pages that \
                        use passkeys, e.g. https://app.example.com"
                    .into(),
            );
        }
        let mut parsed = Vec::new();
        for origin in &self.origins {
            let url = Url::parse(origin.trim()).map_err(|_| {
                format!(
                    "MFAGATE_WEBAUTHN_ORIGINS: '{origin}' is not an origin; write it as the \
                     browser shows it, e.g. https://app.example.com or http://localhost:8080"
                )
            })?;
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
            if !secure {
                return Err(format!(
                    "MFAGATE_WEBAUTHN_ORIGINS: '{origin}' must use https (browsers allow \
                     passkeys over plain http only on localhost)"
                ));
            }
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(format!(
                    "MFAGATE_WEBAUTHN_ORIGINS: '{origin}' is not on MFAGATE_WEBAUTHN_RP_ID \
                     '{rp_id}'; the RP ID must be the origin's host or a parent domain of it \
                     (for https://app.example.com set MFAGATE_WEBAUTHN_RP_ID=example.com)"
                ));
            }
            parsed.push(url);
        }
        Ok(parsed)
    }
}

/// How strongly the authenticator must check the user itself (PIN, biometrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// After a password: a key without a PIN is still a second factor.
    Preferred,
    /// A passwordless login: the passkey is both factors.
    Required,
}

/// A passkey the store holds: its id and the library's record of it (public key, flags).
#[derive(Clone)]
pub struct StoredPasskey {
    pub credential_id: Vec<u8>,
    /// The record `Registered::record` gave, as JSON (sealed at rest).
    pub record: String,
    /// The signature counter as the store has it (the record's own is not kept current).
    pub sign_count: u32,
}

crate::debug_showing!(StoredPasskey { sign_count });

/// A registration that verified.
#[derive(Clone)]
pub struct Registered {
    pub credential_id: Vec<u8>,
    pub record: String,
    pub sign_count: u32,
    /// What the browser said the authenticator speaks over (`usb`, `internal`, ...).
    pub transports: Vec<String>,
}

crate::debug_showing!(Registered {
    sign_count,
    transports
});

/// Why an authenticator's answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not the JSON of a credential.
    Malformed,
    /// The counter did not grow: the key may have been cloned.
    PossibleClone,
    /// Anything else: wrong challenge, origin, RP ID, signature, flags, credential.
    Invalid,
}

impl Refusal {
    /// For logs and audit details: no data of the request.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed credential",
            Self::PossibleClone => "signature counter did not grow: possible cloned key",
            Self::Invalid => "assertion did not verify",
        }
    }
}

fn refusal(error: WebauthnError) -> Refusal {
    tracing::info!(%error, "a WebAuthn response was refused");
    match error {
        WebauthnError::CredentialPossibleCompromise => Refusal::PossibleClone,
        _ => Refusal::Invalid,
    }
}

/// The ceremony state of a login: the library's, and which user it was begun for.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: AuthenticationState,
    /// The user named at `passkey/begin` (or the challenge's); `None` with `named`: a name that
    /// matched nobody, so no credential can pass.
    user_id: Option<String>,
    named: bool,
}

/// A login ceremony as it comes back from the store.
pub struct LoginCeremony {
    state: LoginState,
}

impl LoginCeremony {
    /// `Some(user)` when the ceremony was begun for a user (by name or at a challenge);
    /// `Some(None)` when it was begun for a name that matched nobody; `None` when no name was
    /// given (a discoverable login).
    pub fn intended_user(&self) -> Option<Option<&str>> {
        self.state.named.then_some(self.state.user_id.as_deref())
    }
}

pub struct RelyingParty {
    core: WebauthnCore,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origins", &self.core.get_allowed_origins())
            .finish_non_exhaustive()
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("WebAuthn state: {e}"))
}

impl RelyingParty {
    pub fn new(settings: &WebauthnSettings) -> Result<Self, String> {
        let origins = settings.parsed_origins()?;
        let rp_name = if settings.rp_name.trim().is_empty() {
            "mfagate"
        } else {
            settings.rp_name.trim()
        };
        Ok(Self {
            core: WebauthnCore::new_unsafe_experts_only(
                rp_name,
                &settings.rp_id.trim().to_ascii_lowercase(),
                origins,
                CEREMONY_TIMEOUT,
                Some(false),
                Some(false),
            ),
        })
    }

    /// Creation options for a new passkey of the user (`user_handle` is the stable, opaque id
    /// the authenticator keeps), excluding the ones the user holds; and the state to finish it.
    pub fn start_registration(
        &self,
        user_handle: &[u8],
        username: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(Value, String), String> {
        let extensions = RequestRegistrationExtensions {
            cred_protect: None,
            uvm: None,
            cred_props: Some(true),
            min_pin_length: None,
            hmac_create_secret: None,
        };
        let builder = self
            .core
            .new_challenge_register_builder(user_handle, username, username)
            .map_err(|e| format!("WebAuthn options: {e}"))?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .require_resident_key(false)
            .exclude_credentials(Some(exclude))
            .extensions(Some(extensions));
        let (mut options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(|e| format!("WebAuthn options: {e}"))?;
        // Discoverable where the authenticator can (passwordless login without a name), not
        // demanded (a security key with few slots still enrols). The library only offers
        // required or discouraged; this is a hint, never checked, so setting it is safe.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
        }
        let options =
            serde_json::to_value(&options.public_key).map_err(|e| format!("WebAuthn: {e}"))?;
        Ok((options, to_json(&state)?))
    }

    /// Verifies `credential.toJSON()` of a registration against its state.
    pub fn finish_registration(
        &self,
        response: &Value,
        state: &str,
    ) -> Result<Registered, Refusal> {
        let response =
            RegisterPublicKeyCredential::deserialize(response).map_err(|_| Refusal::Malformed)?;
        let state: RegistrationState = serde_json::from_str(state).map_err(|_| Refusal::Invalid)?;
        let credential = self
            .core
            .register_credential(&response, &state, None)
            .map_err(refusal)?;
        let transports = response
            .response
            .transports
            .iter()
            .flatten()
            .filter_map(|t| serde_json::to_value(t).ok())
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        Ok(Registered {
            credential_id: credential.cred_id.to_vec(),
            sign_count: credential.counter,
            record: to_json(&credential).map_err(|_| Refusal::Invalid)?,
            transports,
        })
    }

    /// Request options and state for a login: with `passkeys`, only those may answer; without,
    /// the authenticator offers its discoverable credentials. `user_id` (with `named`) binds
    /// the ceremony to the user it was begun for.
    pub fn start_login(
        &self,
        passkeys: &[StoredPasskey],
        verification: Verification,
        user_id: Option<&str>,
        named: bool,
    ) -> Result<(Value, String), String> {
        let credentials = passkeys
            .iter()
            .filter_map(|p| credential(p).ok())
            .collect::<Vec<_>>();
        let policy = match verification {
            Verification::Preferred => UserVerificationPolicy::Preferred,
            Verification::Required => UserVerificationPolicy::Required,
        };
        let (options, state) = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(policy))
            .and_then(|builder| self.core.generate_challenge_authenticate(builder))
            .map_err(|e| format!("WebAuthn options: {e}"))?;
        let options =
            serde_json::to_value(&options.public_key).map_err(|e| format!("WebAuthn: {e}"))?;
        let state = LoginState {
            state,
            user_id: user_id.map(str::to_string),
            named,
        };
        Ok((options, to_json(&state)?))
    }

    /// The ceremony a stored login state describes.
    pub fn login_ceremony(&self, state: &str) -> Result<LoginCeremony, String> {
        serde_json::from_str(state)
            .map(|state| LoginCeremony { state })
            .map_err(|e| format!("WebAuthn state: {e}"))
    }

    /// Verifies `credential.toJSON()` of a login with `passkey` (the stored credential its id
    /// names, of `owner`): signature, challenge, origin, RP ID, user presence and
    /// verification, and a counter that grew. The new counter, for the store to claim.
    pub fn finish_login(
        &self,
        assertion: &Assertion,
        ceremony: &LoginCeremony,
        passkey: &StoredPasskey,
        owner: &str,
    ) -> Result<u32, Refusal> {
        let response = &assertion.0;
        // The authenticator's user handle, where it sends one, must be the owner's: a
        // credential cannot sign in as someone else.
        if let Some(handle) = response.get_user_unique_id() {
            if !crate::secret::constant_time_eq(handle, owner.as_bytes()) {
                return Err(Refusal::Invalid);
            }
        }
        let credential = credential(passkey).map_err(|_| Refusal::Invalid)?;
        let result = self
            .core
            .authenticate_single_credential(response, &ceremony.state.state, &credential)
            .map_err(refusal)?;
        Ok(result.counter())
    }
}

/// A login's `credential.toJSON()`, parsed once: its id finds the passkey it claims to be, and
/// `RelyingParty::finish_login` checks it.
pub struct Assertion(PublicKeyCredential);

impl Assertion {
    pub fn parse(response: &Value) -> Result<Self, Refusal> {
        PublicKeyCredential::deserialize(response)
            .map(Self)
            .map_err(|_| Refusal::Malformed)
    }

    /// The credential id it names (`rawId`).
    pub fn credential_id(&self) -> &[u8] {
        self.0.get_credential_id()
    }
}

/// The library's credential record with the store's counter.
fn credential(passkey: &StoredPasskey) -> Result<Credential, String> {
    let mut credential: Credential =
        serde_json::from_str(&passkey.record).map_err(|e| format!("passkey record: {e}"))?;
    credential.counter = passkey.sign_count;
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp_id: &str, origins: &[&str]) -> WebauthnSettings {
        WebauthnSettings {
            rp_id: rp_id.into(),
            rp_name: "mfagate".into(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn origins_must_be_on_the_rp_id_and_secure() {
        assert!(WebauthnSettings::default().parsed_origins().is_ok());
        assert!(settings(
            "example.com",
            &["https://app.example.com", "https://example.com"]
        )
        .parsed_origins()
        .is_ok());
        let other = settings("example.com", &["https://example.org"]).parsed_origins();
        assert!(other.is_err_and(|e| e.contains("MFAGATE_WEBAUTHN_RP_ID=example.com")));
        assert!(settings("example.com", &["http://app.example.com"])
            .parsed_origins()
            .is_err_and(|e| e.contains("https")));
        assert!(settings("https://example.com", &["https://example.com"])
            .parsed_origins()
            .is_err());
        assert!(settings("example.com", &["not an origin"])
            .parsed_origins()
            .is_err());
        assert!(settings("example.com", &[]).parsed_origins().is_err());
        // A suffix that is not a parent domain does not count.
        assert!(settings("example.com", &["https://badexample.com"])
            .parsed_origins()
            .is_err());
    }

    #[test]
    fn creation_options_are_the_w3c_json_form() {
        let rp = RelyingParty::new(&WebauthnSettings::default()).unwrap();
        let (options, state) = rp
            .start_registration(b"user-1", "ann", vec![vec![1, 2, 3]])
            .unwrap();
        assert_eq!(options["rp"]["id"], "localhost");
        assert_eq!(options["user"]["name"], "ann");
        assert_eq!(options["user"]["id"], "dXNlci0x");
        assert_eq!(options["excludeCredentials"][0]["id"], "AQID");
        assert_eq!(
            options["authenticatorSelection"]["residentKey"],
            "preferred"
        );
        assert_eq!(
            options["authenticatorSelection"]["userVerification"],
            "preferred"
        );
        assert_eq!(options["attestation"], "none");
        assert!(options["challenge"].as_str().is_some_and(|c| c.len() >= 43));
        assert!(!state.is_empty());
        let (request, _) = rp
            .start_login(&[], Verification::Required, None, false)
            .unwrap();
        assert_eq!(request["rpId"], "localhost");
        assert_eq!(request["userVerification"], "required");
        assert_eq!(request["allowCredentials"], serde_json::json!([]));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let rp = RelyingParty::new(&WebauthnSettings::default()).unwrap();
        let (_, state) = rp.start_registration(b"u", "ann", vec![]).unwrap();
        for junk in [
            serde_json::json!(null),
            serde_json::json!({"id": 1}),
            serde_json::json!({"id": "x", "rawId": "!!", "type": "public-key", "response": {}}),
        ] {
            assert_eq!(
                rp.finish_registration(&junk, &state).err(),
                Some(Refusal::Malformed)
            );
            assert!(Assertion::parse(&junk).is_err());
        }
    }
}
