//! Sessions and recent authentication: `GET /sessions`, `DELETE /sessions/{id}`,
//! `POST /logout/all`, `POST /reauthenticate`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use mfagate_core::service::SessionView;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{counted_per_ip, login_response};
use crate::error::ApiResult;
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{rfc3339, Json};

/// A session on the wire.
#[derive(Debug, Serialize)]
pub struct SessionBody {
    pub id: String,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
    pub current: bool,
}

impl From<SessionView> for SessionBody {
    fn from(s: SessionView) -> Self {
        Self {
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
            amr: s.amr,
            current: s.current,
        }
    }
}

/// `{"password"?}`: left out by a user who proves a second factor instead.
#[derive(Deserialize)]
pub struct ReauthenticateRequest {
    pub password: Option<String>,
}
mfagate_core::debug_showing!(ReauthenticateRequest {});

/// `POST /logout/all` takes `{}`.
#[derive(Debug, Deserialize)]
pub struct EmptyRequest {}

pub async fn list(State(gate): State<MfaGate>, auth: AuthenticatedUser) -> ApiResult<Json<Value>> {
    let sessions: Vec<SessionBody> = gate
        .gatekeeper()
        .list_sessions(&auth.claims, gate.now())
        .await?
        .into_iter()
        .map(SessionBody::from)
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

pub async fn end(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gate.gatekeeper()
        .end_session(&auth.claims, &id, &gate.context(client))
        .await?;
    Ok(Json(json!({ "detail": "the session is ended" })))
}

pub async fn logout_all(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(_): JsonBody<EmptyRequest>,
) -> ApiResult<Json<Value>> {
    let revoked = gate
        .gatekeeper()
        .logout_all(&auth.claims, &gate.context(client))
        .await?;
    Ok(Json(json!({
        "detail": "every session is ended; access tokens already issued live until they expire",
        "revoked": revoked,
    })))
}

pub async fn reauthenticate(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<ReauthenticateRequest>,
) -> ApiResult<Response> {
    let outcome = gate
        .gatekeeper()
        .reauthenticate(
            &auth.claims,
            body.password.as_deref(),
            &gate.context(client),
        )
        .await?;
    Ok(login_response(&gate, StatusCode::OK, outcome, Map::new()))
}

/// `reauthenticate` checks passwords: it counts against the per-IP budget like a login.
pub(crate) fn router(gate: &MfaGate) -> Router<MfaGate> {
    let counted = Router::new().route("/reauthenticate", post(reauthenticate));
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/{id}", delete(end))
        .route("/logout/all", post(logout_all))
        .merge(counted_per_ip(gate, counted))
}
