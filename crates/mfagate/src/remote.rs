//! Verifying mfagate's EdDSA access tokens in another service, from the published JWKS, without
//! sharing a secret (feature `remote-jwks`).
//!
//! ```ignore
//! let verifier = JwksVerifier::new("https://auth.example.com/.well-known/jwks.json", "mfagate");
//! let app = Router::new()
//!     .route("/orders", get(|user: RemoteUser| async move { user.user_id }))
//!     .route("/payouts", get(|RemoteMfaUser(user): RemoteMfaUser| async move { user.user_id }))
//!     .with_state(verifier);
//! ```
//!
//! Keys are fetched on first use and again when a token names a key not seen yet (a rotation),
//! at most once every ten seconds.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use mfagate_core::jwt::{EdKeyRing, JwtError};
use mfagate_core::{AccessClaims, Error};

use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::gate::unix_now;

const MIN_REFETCH: Duration = Duration::from_secs(10);

struct Inner {
    url: String,
    issuer: String,
    client: reqwest::Client,
    ring: RwLock<EdKeyRing>,
    fetched_at: Mutex<Option<Instant>>,
}

#[derive(Clone)]
pub struct JwksVerifier(Arc<Inner>);

impl std::fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("url", &self.0.url)
            .finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// `issuer` must match the tokens' `iss` (mfagate's `MFAGATE_JWT_ISSUER`).
    pub fn new(jwks_url: impl Into<String>, issuer: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self(Arc::new(Inner {
            url: jwks_url.into(),
            issuer: issuer.into(),
            client,
            ring: RwLock::new(EdKeyRing::default()),
            fetched_at: Mutex::new(None),
        }))
    }

    fn try_verify(&self, token: &str) -> Result<AccessClaims, JwtError> {
        self.0
            .ring
            .read()
            .map_err(|_| JwtError::UnknownKey)?
            .verify(token, unix_now())
    }

    fn may_fetch(&self) -> bool {
        let Ok(mut fetched_at) = self.0.fetched_at.lock() else {
            return false;
        };
        match *fetched_at {
            Some(at) if at.elapsed() < MIN_REFETCH => false,
            _ => {
                *fetched_at = Some(Instant::now());
                true
            }
        }
    }

    async fn fetch(&self) -> Result<(), String> {
        let document: serde_json::Value = self
            .0
            .client
            .get(&self.0.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("fetching {}: {e}", self.0.url))?
            .json()
            .await
            .map_err(|e| format!("reading {}: {e}", self.0.url))?;
        let ring = EdKeyRing::from_jwks(&document)?;
        if let Ok(mut slot) = self.0.ring.write() {
            *slot = ring;
        }
        Ok(())
    }

    /// Verifies signature, expiry and issuer.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        let mut verified = self.try_verify(token);
        if matches!(verified, Err(JwtError::UnknownKey)) && self.may_fetch() {
            if let Err(reason) = self.fetch().await {
                tracing::warn!(%reason, "could not fetch mfagate's JWKS");
            }
            verified = self.try_verify(token);
        }
        let claims = verified.map_err(|reason| {
            tracing::debug!(%reason, "access token refused");
            Error::NotAuthenticated
        })?;
        if claims.iss != self.0.issuer {
            return Err(Error::NotAuthenticated);
        }
        Ok(claims)
    }
}

/// A request with a valid mfagate access token, verified against the JWKS.
#[derive(Debug, Clone)]
pub struct RemoteUser {
    pub user_id: String,
    pub amr: Vec<String>,
    pub claims: AccessClaims,
}

impl<S> FromRequestParts<S> for RemoteUser
where
    JwksVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = JwksVerifier::from_ref(state);
        let token = bearer_token(&parts.headers).ok_or(Error::NotAuthenticated)?;
        let claims = verifier.verify(token).await?;
        Ok(Self {
            user_id: claims.sub.clone(),
            amr: claims.amr.clone(),
            claims,
        })
    }
}

/// Like [`RemoteUser`], but `403 mfa_required` unless the token shows a second factor.
#[derive(Debug, Clone)]
pub struct RemoteMfaUser(pub RemoteUser);

impl<S> FromRequestParts<S> for RemoteMfaUser
where
    JwksVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = RemoteUser::from_request_parts(parts, state).await?;
        if !user.claims.has_second_factor() {
            return Err(Error::MfaRequired.into());
        }
        Ok(Self(user))
    }
}
