//! The administrators' API: invitations and user management. Every call checks, against the
//! database, that the caller is an administrator (`403 forbidden` otherwise).

use crate::wire::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::extract::{AdminUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{
    parse_user_cursor, user_cursor, AdminUserBody, AuditEventBody, AuditQuery, InvitationRequest,
    PageQuery,
};
use mfagate_core::store::UserPageStart;

pub async fn invite(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    _admin: AdminUser,
    JsonBody(body): JsonBody<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = gate
        .gatekeeper()
        .invite(&body.email, body.username.as_deref(), &gate.context(client))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "detail": "invitation sent", "email": user.email, "id": user.id, "username": user.username }),
        ),
    ))
}

pub async fn list_users(
    State(gate): State<MfaGate>,
    _admin: AdminUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let start = match &page.after {
        Some(cursor) => parse_user_cursor(cursor).ok_or_else(|| {
            mfagate_core::Error::validation("after", "is not a cursor: pass the `next` of a page")
        })?,
        None => UserPageStart::Offset(page.offset.unwrap_or(0)),
    };
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let users = gate.gatekeeper().list_users(limit, &start).await?;
    // A full page may have a successor; its cursor is the last user of this one.
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(user_cursor))
        .flatten();
    let users: Vec<AdminUserBody> = users.into_iter().map(AdminUserBody::from).collect();
    Ok(Json(json!({ "users": users, "next": next })))
}

/// The newest audit events, of one user (`user_id`) or of everyone.
pub async fn audit(
    State(gate): State<MfaGate>,
    _admin: AdminUser,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let events: Vec<AuditEventBody> = gate
        .gatekeeper()
        .audit_events(query.user_id.as_deref(), query.limit.unwrap_or(100))
        .await?
        .into_iter()
        .map(AuditEventBody::from)
        .collect();
    Ok(Json(json!({ "events": events })))
}

pub async fn reset_mfa(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = gate
        .gatekeeper()
        .admin_reset_mfa_of(&admin, &user_id, &gate.context(client))
        .await?;
    Ok(Json(
        json!({ "detail": format!("second factors of {} removed and sessions ended", user.username) }),
    ))
}

async fn set_disabled(
    gate: MfaGate,
    client: ClientAddr,
    admin: mfagate_core::store::User,
    user_id: String,
    disabled: bool,
) -> ApiResult<Json<Value>> {
    let user = gate
        .gatekeeper()
        .admin_set_disabled(&admin, &user_id, disabled, &gate.context(client))
        .await?;
    let what = if disabled {
        "disabled; their sessions ended"
    } else {
        "enabled"
    };
    Ok(Json(
        json!({ "detail": format!("{} is {what}", user.username) }),
    ))
}

pub async fn disable(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(gate, client, admin, user_id, true).await
}

pub async fn enable(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(gate, client, admin, user_id, false).await
}

pub(crate) fn router() -> Router<MfaGate> {
    Router::new()
        .route("/admin/invitations", post(invite))
        .route("/admin/users", get(list_users))
        .route("/admin/audit", get(audit))
        .route("/admin/users/{id}/reset-mfa", post(reset_mfa))
        .route("/admin/users/{id}/disable", post(disable))
        .route("/admin/users/{id}/enable", post(enable))
}
