//! Extractors: JSON bodies whose rejections speak the contract, the caller's address, and the
//! two guards host apps put on their own routes.

use mfagate_core::service::UserAgent;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use mfagate_core::client_ip::client_ip;
use mfagate_core::{AccessClaims, Error};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::gate::MfaGate;

/// A JSON body. Wrong content type, malformed JSON, wrong types and oversized bodies become
/// `415`, `400 invalid_request` and `413` in the contract's shape.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        // serde would accept `["a", "b"]` for a struct; the contract wants an object.
        if !value.is_object() {
            return Err(ApiError::invalid_request("the body must be a JSON object"));
        }
        // serde's message names the field and the expected type.
        serde_json::from_value(value)
            .map(Self)
            .map_err(|error| ApiError::invalid_request(error.to_string()))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is over 64 KiB",
        ),
        _ => match rejection {
            JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
                ApiError::invalid_request("the body is not valid JSON")
            }
            other => ApiError::invalid_request(other.body_text()),
        },
    }
}

/// The token from `Authorization: Bearer <token>`, if present and well-formed.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A request carrying a valid access token. `amr` tells how the user authenticated.
///
/// ```ignore
/// async fn profile(user: AuthenticatedUser) -> String { user.user_id }
/// ```
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub user_id: String,
    pub amr: Vec<String>,
    pub claims: AccessClaims,
}

impl<S> FromRequestParts<S> for AuthenticatedUser
where
    MfaGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = MfaGate::from_ref(state);
        let token = bearer_token(&parts.headers).ok_or(Error::NotAuthenticated)?;
        let claims = gate.gatekeeper().authenticate(token, gate.now()).await?;
        Ok(Self {
            user_id: claims.sub.clone(),
            amr: claims.amr.clone(),
            claims,
        })
    }
}

/// Like [`AuthenticatedUser`], but only for tokens issued after a second factor
/// (`amr` contains `mfa`); others get `403 mfa_required`.
#[derive(Debug, Clone)]
pub struct MfaVerifiedUser(pub AuthenticatedUser);

impl<S> FromRequestParts<S> for MfaVerifiedUser
where
    MfaGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthenticatedUser::from_request_parts(parts, state).await?;
        if !user.claims.has_second_factor() {
            return Err(Error::MfaRequired.into());
        }
        Ok(Self(user))
    }
}

/// Like [`AuthenticatedUser`], but only for a recent authentication: `auth_time` at most
/// `MAX_AGE` seconds ago and, for a user with a second factor, one that used it. Others get
/// `401 reauthentication_required` with `WWW-Authenticate: Bearer
/// error="insufficient_user_authentication", max_age=MAX_AGE` (RFC 9470), the same answer
/// mfagate's own sensitive calls give; the client then calls `POST /auth/reauthenticate`.
///
/// ```ignore
/// async fn close_account(RecentlyAuthenticated(user): RecentlyAuthenticated<300>) { .. }
/// ```
#[derive(Debug, Clone)]
pub struct RecentlyAuthenticated<const MAX_AGE: i64>(pub AuthenticatedUser);

impl<S, const MAX_AGE: i64> FromRequestParts<S> for RecentlyAuthenticated<MAX_AGE>
where
    MfaGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthenticatedUser::from_request_parts(parts, state).await?;
        let gate = MfaGate::from_ref(state);
        gate.gatekeeper()
            .require_recent_authentication(&user.claims, MAX_AGE, gate.now())
            .await?;
        Ok(Self(user))
    }
}

/// The caller, when the database says they are an administrator (`403 forbidden` otherwise;
/// `401` without a valid token). Read on every call, so a withdrawn right takes effect at once.
#[derive(Debug, Clone)]
pub struct AdminUser(pub mfagate_core::store::User);

impl<S> FromRequestParts<S> for AdminUser
where
    MfaGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthenticatedUser::from_request_parts(parts, state).await?;
        let gate = MfaGate::from_ref(state);
        Ok(Self(gate.gatekeeper().require_admin(&user.user_id).await?))
    }
}

/// The client's address: the socket peer, or the forwarded address when the peer is a trusted
/// proxy (`None` when the app was served without connect info); and its `User-Agent`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>, pub UserAgent);

impl<S> FromRequestParts<S> for ClientAddr
where
    MfaGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = MfaGate::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        // Every `X-Forwarded-For` line, in order, as one list (RFC 9110 §5.3): a proxy that
        // appends a line of its own must not leave a client-written first line to be believed.
        // A line that is not text ends the list there, as a garbled entry does.
        let lines: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("garbled"))
            .collect();
        let forwarded = (!lines.is_empty()).then(|| lines.join(","));
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(UserAgent::new)
            .unwrap_or_default();
        Ok(Self(
            peer.map(|peer| client_ip(peer, forwarded.as_deref(), &gate.options().trusted_proxies)),
            user_agent,
        ))
    }
}
