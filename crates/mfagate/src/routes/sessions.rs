//! Sessions and recent authentication: `GET /sessions`, `DELETE /sessions/{id}`,
//! `POST /logout/all`, `POST /reauthenticate`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mfagate_core::service::SessionView;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{counted_per_ip, login_response, Delivery};
use crate::error::ApiResult;
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, LoginAnswer};
use crate::wire::{rfc3339, DetailBody, Json};

/// A session on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub id: String,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
    /// The session of the token that asked.
    pub current: bool,
}

/// `GET /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsBody {
    pub sessions: Vec<SessionBody>,
}

/// `POST /logout/all`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOutEverywhereBody {
    pub detail: &'static str,
    /// How many sessions were ended.
    pub revoked: u64,
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
#[derive(Deserialize, ToSchema)]
pub struct ReauthenticateRequest {
    pub password: Option<String>,
}
mfagate_core::debug_showing!(ReauthenticateRequest {});

/// `POST /logout/all` takes `{}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmptyRequest {}

#[utoipa::path(get, path = "/sessions", tag = "sessions", operation_id = "list_sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions, the current one marked", body = SessionsBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
    ))]
pub async fn list(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
) -> ApiResult<Json<SessionsBody>> {
    let sessions: Vec<SessionBody> = gate
        .gatekeeper()
        .list_sessions(&auth.claims, gate.now())
        .await?
        .into_iter()
        .map(SessionBody::from)
        .collect();
    Ok(Json(SessionsBody { sessions }))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", operation_id = "end_session",
    security(("bearer" = [])), params(("id" = String, Path, description = "The session's id (an access token's `sid`)")),
    responses(
        (status = 200, description = "The session's refresh tokens and remembered devices are dead", body = DetailBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 404, description = "`not_found`: no live session of the caller's with that id", body = ErrorBody),
    ))]
pub async fn end(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(id): Path<String>,
) -> ApiResult<Json<DetailBody>> {
    gate.gatekeeper()
        .end_session(&auth.claims, &id, &gate.context(client))
        .await?;
    Ok(Json(DetailBody {
        detail: "the session is ended",
    }))
}

#[utoipa::path(post, path = "/logout/all", tag = "sessions", operation_id = "logout_all",
    security(("bearer" = [])), request_body(content = EmptyRequest, description = "`{}`"),
    responses(
        (status = 200, description = "Every session and remembered device of the caller is dead", body = LoggedOutEverywhereBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
    ))]
pub async fn logout_all(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(_): JsonBody<EmptyRequest>,
) -> ApiResult<Json<LoggedOutEverywhereBody>> {
    let revoked = gate
        .gatekeeper()
        .logout_all(&auth.claims, &gate.context(client))
        .await?;
    Ok(Json(LoggedOutEverywhereBody {
        detail: "every session is ended; access tokens already issued live until they expire",
        revoked,
    }))
}

#[utoipa::path(post, path = "/reauthenticate", tag = "sessions", operation_id = "reauthenticate",
    security(("bearer" = [])), request_body(content = ReauthenticateRequest, description = "`{\"password\"}`, or `{}` to prove a second factor instead"),
    responses(
        (status = 200, description = "A challenge whose answer continues this session with a new `auth_time`, or (password only, no factor) tokens", body = LoginAnswer),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (wrong password), `not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 429, description = "`throttled`", body = ErrorBody),
    ))]
pub async fn reauthenticate(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
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
    Ok(login_response(
        &gate,
        delivery,
        StatusCode::OK,
        outcome,
        Map::new(),
    ))
}

/// `reauthenticate` checks passwords: it counts against the per-IP budget like a login.
pub(crate) fn router(gate: &MfaGate) -> OpenApiRouter<MfaGate> {
    let counted = OpenApiRouter::new().routes(routes!(reauthenticate));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(end))
        .routes(routes!(logout_all))
        .merge(counted_per_ip(gate, counted))
}
